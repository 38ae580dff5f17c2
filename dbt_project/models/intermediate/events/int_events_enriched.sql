{{ config(post_hook="{{ add_keys('event_id', {'ix_ts': 'event_ts'}) }}") }}

with events as (
    select * from {{ ref('stg_recsys__user_behavior') }}
),

items as (
    select
        item_id,
        category_id,
        brand,
        price
    from {{ ref('stg_recsys__items') }}
),

final as (
    select
        events.event_id,
        events.user_id,
        events.session_id,
        events.item_id,
        events.behavior_type,
        events.query_text,
        events.event_ts,
        items.category_id,
        items.brand,
        items.price
    from events
    left join items on events.item_id = items.item_id
)

select * from final
