{{ config(post_hook="{{ add_keys(['user_id', 'item_id']) }}") }}

{#- Session-intent popularity candidates: the candidates_intent_k most popular in-stock items
    (dim_items.popularity_score) of the user's session-intent category (fct_session_intent),
    score = popularity / the category's top popularity. Only the users of this realtime run
    (int_realtime_user_events): every user on a full build. -#}
with events as (
    select * from {{ ref('int_realtime_user_events') }}
),

session_intent as (
    select * from {{ ref('fct_session_intent') }}
),

items as (
    select * from {{ ref('dim_items') }}
),

run_users as (
    select distinct user_id from events
),

target_users as (
    select
        session_intent.user_id,
        session_intent.intent_category_id,
        session_intent.last_event_ts
    from session_intent
    inner join run_users on session_intent.user_id = run_users.user_id
),

ranked_in_category as (
    select
        item_id,
        category_id,
        popularity_score / nullif(max(popularity_score) over (partition by category_id), 0) as score,
        row_number() over (partition by category_id order by popularity_score desc, item_id) as rn
    from items
    where in_stock = 1
),

popular_in_category as (
    -- the top k per category before the join with the users
    select
        item_id,
        category_id,
        score
    from ranked_in_category
    where rn <= {{ var('candidates_intent_k') | int }}
),

final as (
    select
        target_users.user_id,
        popular_in_category.item_id,
        {{ as_double('coalesce(popular_in_category.score, 0)') }} as score,
        target_users.last_event_ts
    from target_users
    inner join popular_in_category on target_users.intent_category_id = popular_in_category.category_id
)

select * from final
