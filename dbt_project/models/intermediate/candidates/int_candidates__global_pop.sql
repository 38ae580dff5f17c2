{{ config(post_hook="{{ add_keys(['user_id', 'item_id']) }}") }}

{#- Global popularity candidates: the candidates_global_k most popular in-stock items
    (dim_items.popularity_score) for every user, score = popularity / the top popularity. Only the
    users of this realtime run (int_realtime_user_events): every user on a full build. -#}
with events as (
    select * from {{ ref('int_realtime_user_events') }}
),

items as (
    select * from {{ ref('dim_items') }}
),

target_users as (
    select
        user_id,
        max(user_last_event_ts) as last_event_ts
    from events
    group by user_id
),

top_global as (
    -- the top k as a derived table with LIMIT (never merged into the cross join below: filtering a
    -- window-ranked catalogue after the join compares every user with every item)
    select
        item_id,
        popularity_score
    from items
    where in_stock = 1
    order by popularity_score desc, item_id
    limit {{ var('candidates_global_k') | int }}
),

top_score as (
    select max(popularity_score) as max_score
    from items
    where in_stock = 1
),

popular_global as (
    select
        top_global.item_id,
        top_global.popularity_score / nullif(top_score.max_score, 0) as score
    from top_global
    cross join top_score
),

final as (
    select
        target_users.user_id,
        popular_global.item_id,
        {{ as_double('coalesce(popular_global.score, 0)') }} as score,
        target_users.last_event_ts
    from target_users
    cross join popular_global
)

select * from final
