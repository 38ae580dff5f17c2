{{ config(post_hook="{{ add_keys(['user_id', 'item_id']) }}") }}

with events as (
    select * from {{ ref('int_events_enriched') }}
),

final as (
    {{ user_items_aggregate_sql('events') }}
)

select * from final
