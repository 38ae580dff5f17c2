{{ config(post_hook="{{ add_keys(['user_id', 'item_id']) }}") }}

{#- Repeat candidates: the user's own items, type-weighted (event_weights.repeat) and decayed from
    the user's last event (repeat_half_life_hours); an item carted and not bought since gets
    +4 x the decay of its last cart. Top candidates_repeat_k per user. Only the users of this
    realtime run (int_realtime_user_events): every user on a full build. -#}
{%- set half_life = var('repeat_half_life_hours') | float %}

with events as (
    select * from {{ ref('int_realtime_user_events') }}
),

user_items as (
    select
        user_id,
        item_id,
        sum(
            {{ type_weight('behavior_type', 'repeat') }}
            * {{ decay('event_ts', 'user_last_event_ts', half_life) }}
        ) as base_score,
        max(case when behavior_type = 'cart' then event_ts end) as last_cart_ts,
        max(case when behavior_type = 'purchase' then event_ts end) as last_purchase_ts,
        max(user_last_event_ts) as last_event_ts
    from events
    where item_id is not null
    group by user_id, item_id
),

scored as (
    select
        user_id,
        item_id,
        last_event_ts,
        base_score
        + case
            when last_cart_ts is not null and (last_purchase_ts is null or last_purchase_ts < last_cart_ts)
                then 4 * {{ decay('last_cart_ts', 'last_event_ts', half_life) }}
            else 0
        end as score
    from user_items
),

ranked as (
    select
        user_id,
        item_id,
        score,
        last_event_ts,
        row_number() over (partition by user_id order by score desc, item_id) as rn
    from scored
),

final as (
    select
        user_id,
        item_id,
        {{ as_double('score') }} as score,
        last_event_ts
    from ranked
    where rn <= {{ var('candidates_repeat_k') | int }}
)

select * from final
