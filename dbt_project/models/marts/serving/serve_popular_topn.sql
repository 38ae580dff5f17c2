{{ config(post_hook="{{ add_keys(['scope', '`rank`']) }}") }}

{#- The popular lists the publisher copies into recsys_serving.popular_topn (cold start and
    backfill): the serving_popular_k most popular in-stock items overall (scope 'global') and per
    category (scope 'category:<category_id>'), by dim_items.popularity_score (THE popularity:
    event_weights.popularity, popularity_days, popularity_half_life_hours); ties by item_id.
    Items without recent events (popularity 0) are left out, so a list can be shorter than k. -#}
with items as (
    select * from {{ ref('dim_items') }}
),

popular as (
    select
        item_id,
        category_id,
        popularity_score
    from items
    where in_stock = 1 and popularity_score > 0
),

ranked as (
    select
        'global' as scope,
        row_number() over (order by popularity_score desc, item_id) as rn,
        item_id,
        popularity_score
    from popular
    union all
    select
        concat('category:', category_id) as scope,
        row_number() over (partition by category_id order by popularity_score desc, item_id) as rn,
        item_id,
        popularity_score
    from popular
),

final as (
    select
        cast(scope as char(32)) as scope,
        cast(rn as signed) as `rank`,
        item_id,
        {{ as_double('popularity_score') }} as score
    from ranked
    where rn <= {{ var('serving_popular_k') | int }}
)

select * from final
