{{ config(post_hook="{{ add_keys(['user_id', 'item_id']) }}") }}

{#- Every ml_covisitation neighbour of the user's candidates_covisit_sources most recent distinct
    items, with each co-visitation score summed over those sources, a source weighted
    candidates_covisit_source_decay^(its position, most recent first): the combined score (what
    int_candidates__covisit ranks) and the typed variants view→view (score_browse: any
    co-occurrence), cart/buy→cart/buy and buy→buy, which ml_candidates carries as features of every
    candidate. Only the users of this realtime run (int_realtime_user_events): every user on a full
    build. -#}
{%- set source_decay = var('candidates_covisit_source_decay') | float %}

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

ranked_sources as (
    select
        user_id,
        item_id,
        last_event_ts,
        row_number() over (partition by user_id order by last_ts desc, item_id) as rn
    from user_items
),

recent_sources as (
    -- the recent sources before the join: joining every item of the user first multiplies the rows
    select
        user_id,
        item_id,
        last_event_ts,
        power({{ source_decay }}, rn - 1) as source_weight
    from ranked_sources
    where rn <= {{ var('candidates_covisit_sources') | int }}
),

final as (
    select
        recent_sources.user_id,
        covisitation.similar_item_id as item_id,
        {{ as_double('sum(recent_sources.source_weight * covisitation.score)') }} as score,
        {{ as_double('sum(recent_sources.source_weight * covisitation.score_browse)') }} as score_view_view,
        {{ as_double('sum(recent_sources.source_weight * covisitation.score_cart_cart)') }} as score_cart_cart,
        {{ as_double('sum(recent_sources.source_weight * covisitation.score_buy_buy)') }} as score_buy_buy,
        max(recent_sources.last_event_ts) as last_event_ts
    from recent_sources
    inner join covisitation on recent_sources.item_id = covisitation.item_id
    group by recent_sources.user_id, covisitation.similar_item_id
)

select * from final
