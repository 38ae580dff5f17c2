{{ config(post_hook="{{ add_keys(['item_id', 'similar_item_id'], {'ix_item_rank': ['item_id', '`rank`']}) }}") }}

{#- Pairs are formed inside a session among its last N distinct items (bounded work per session,
    so the cost stays linear in events). Each pair counts in both directions, weighted by
    exp-decay of its age; the neighbour's behaviour decides which score it feeds, and the pair
    types are weighted by event_weights.covisit (browse = any co-occurrence, cart = the neighbour
    was carted or faved, purchase = it was bought). Two typed variants on both sides, as the OTTO
    solutions use them, are kept beside it: score_cart_cart (both items carted, faved or bought in
    the session) and score_buy_buy (both bought: bought together). -#}
{%- set n_items = var('covisit_session_items') | int %}
{%- set half_life_hours = (var('covisit_half_life_days') | float) * 24 %}

with events as (
    select * from {{ ref('int_events_enriched') }}
),

as_of as (
    {{ as_of_sql(ref('int_events_enriched')) }}
),

session_items as (
    select
        user_id,
        session_id,
        item_id,
        1 as was_seen,
        max(event_ts) as last_ts,
        max(behavior_type in ('cart', 'fav')) as was_carted,
        max(behavior_type = 'purchase') as was_purchased
    from events
    where item_id is not null
    group by user_id, session_id, item_id
),

recent_session_items as (
    select *
    from (
        select
            user_id,
            session_id,
            item_id,
            was_seen,
            last_ts,
            was_carted,
            was_purchased,
            row_number() over (partition by user_id, session_id order by last_ts desc, item_id) as rn
        from session_items
    ) as ranked
    where rn <= {{ n_items }}
),

{%- set pair_decay = decay('greatest(a.last_ts, b.last_ts)', 'as_of.as_of_ts', half_life_hours) %}

pairs as (
    select
        a.item_id,
        b.item_id as similar_item_id,
        sum({{ pair_decay }}) as score_browse,
        sum(b.was_carted * {{ pair_decay }}) as score_cart,
        sum(b.was_purchased * {{ pair_decay }}) as score_purchase,
        sum(
            greatest(a.was_carted, a.was_purchased) * greatest(b.was_carted, b.was_purchased) * {{ pair_decay }}
        ) as score_cart_cart,
        sum(a.was_purchased * b.was_purchased * {{ pair_decay }}) as score_buy_buy,
        max(greatest(a.last_ts, b.last_ts)) as last_event_ts
    from recent_session_items as a
    inner join recent_session_items as b
        on a.user_id = b.user_id and a.session_id = b.session_id and a.item_id <> b.item_id
    cross join as_of
    group by a.item_id, b.item_id
),

scored as (
    select
        item_id,
        similar_item_id,
        score_browse,
        score_cart,
        score_purchase,
        score_cart_cart,
        score_buy_buy,
        last_event_ts,
        {{ event_weight('covisit', 'browse') }} * score_browse
        + {{ event_weight('covisit', 'cart') }} * score_cart
        + {{ event_weight('covisit', 'purchase') }} * score_purchase as score
    from pairs
),

ranked as (
    select
        item_id,
        similar_item_id,
        score,
        score_browse,
        score_cart,
        score_purchase,
        score_cart_cart,
        score_buy_buy,
        last_event_ts,
        row_number() over (partition by item_id order by score desc, similar_item_id) as rn
    from scored
),

final as (
    select
        item_id,
        similar_item_id,
        cast(rn as signed) as `rank`,
        {{ as_double('score') }} as score,
        {{ as_double('score_browse') }} as score_browse,
        {{ as_double('score_cart') }} as score_cart,
        {{ as_double('score_purchase') }} as score_purchase,
        {{ as_double('score_cart_cart') }} as score_cart_cart,
        {{ as_double('score_buy_buy') }} as score_buy_buy,
        last_event_ts
    from ranked
    where rn <= {{ var('covisit_top_k') | int }}
)

select * from final
