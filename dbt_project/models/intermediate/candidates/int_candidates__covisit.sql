{{ config(post_hook="{{ add_keys(['user_id', 'item_id']) }}") }}

{#- Co-visitation candidates: the ml_covisitation neighbours of the user's candidates_covisit_sources
    most recent distinct items, each neighbour's score weighted 0.8^(position of the source item,
    most recent first) and summed. Top candidates_covisit_k per user. Only the users of this
    realtime run (int_realtime_user_events): every user on a full build. -#}
with events as (
    select * from {{ ref('int_realtime_user_events') }}
),

covisitation as (
    select * from {{ ref('ml_covisitation') }}
),

user_items as (
    select
        user_id,
        item_id,
        max(event_ts) as last_ts,
        max(user_last_event_ts) as last_event_ts
    from events
    where item_id is not null
    group by user_id, item_id
),

recent_sources as (
    select
        user_id,
        item_id,
        last_event_ts,
        row_number() over (partition by user_id order by last_ts desc, item_id) as rn
    from user_items
),

summed as (
    select
        recent_sources.user_id,
        covisitation.similar_item_id as item_id,
        sum(power(0.8, recent_sources.rn - 1) * covisitation.score) as score,
        max(recent_sources.last_event_ts) as last_event_ts
    from recent_sources
    inner join covisitation on recent_sources.item_id = covisitation.item_id
    where recent_sources.rn <= {{ var('candidates_covisit_sources') | int }}
    group by recent_sources.user_id, covisitation.similar_item_id
),

ranked as (
    select
        user_id,
        item_id,
        score,
        last_event_ts,
        row_number() over (partition by user_id order by score desc, item_id) as rn
    from summed
),

final as (
    select
        user_id,
        item_id,
        {{ as_double('score') }} as score,
        last_event_ts
    from ranked
    where rn <= {{ var('candidates_covisit_k') | int }}
)

select * from final
