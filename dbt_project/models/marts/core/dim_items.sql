{{ config(post_hook="{{ add_keys('item_id', {'ix_category_pop': ['category_id', 'popularity_score']}) }}") }}

{%- set popularity_days = var('popularity_days') | int %}
{%- set popularity_half_life = var('popularity_half_life_hours') | float %}

with events as (
    select * from {{ ref('int_events_enriched') }}
),

items as (
    select * from {{ ref('stg_recsys__items') }}
),

as_of as (
    {{ as_of_sql(ref('int_events_enriched')) }}
),

-- every event with the reference time, so the windows below read one relation
dated_events as (
    select
        events.*,
        as_of.as_of_ts
    from events
    cross join as_of
),

activity as (
    select
        item_id,
        {{ count_if("behavior_type = 'browse' and event_ts >= as_of_ts - interval 1 day") }} as pop_browse_1d,
        {{ count_if("behavior_type = 'browse' and event_ts >= as_of_ts - interval 7 day") }} as pop_browse_7d,
        {{ count_if("behavior_type = 'browse' and event_ts >= as_of_ts - interval 30 day") }} as pop_browse_30d,
        {{ count_if("behavior_type = 'cart' and event_ts >= as_of_ts - interval 7 day") }} as pop_cart_7d,
        {{ count_if("behavior_type = 'fav' and event_ts >= as_of_ts - interval 7 day") }} as pop_fav_7d,
        {{ count_if("behavior_type = 'purchase' and event_ts >= as_of_ts - interval 7 day") }} as pop_purchase_7d,
        {{ count_if("behavior_type = 'cart' and event_ts >= as_of_ts - interval 30 day") }} as n_cart_30d,
        {{ count_if("behavior_type = 'purchase' and event_ts >= as_of_ts - interval 30 day") }} as n_purchase_30d,
        cast(count(distinct case when behavior_type = 'purchase' then user_id end) as signed) as n_buyers_total,
        -- THE popularity ("popular" everywhere: candidates, serving lists, the popularity baseline): events
        -- of the last popularity_days, type-weighted, halved every popularity_half_life_hours
        sum(
            case
                when event_ts >= as_of_ts - interval {{ popularity_days }} day
                    then
                        {{ type_weight('behavior_type', 'popularity') }}
                        * {{ decay('event_ts', 'as_of_ts', popularity_half_life) }}
                else 0
            end
        ) as popularity_score,
        max(event_ts) as last_event_ts
    from dated_events
    where item_id is not null
    group by item_id
),

final as (
    select
        items.item_id,
        items.category_id,
        items.brand,
        items.price,
        items.in_stock,
        coalesce(activity.pop_browse_1d, 0) as pop_browse_1d,
        coalesce(activity.pop_browse_7d, 0) as pop_browse_7d,
        coalesce(activity.pop_browse_30d, 0) as pop_browse_30d,
        coalesce(activity.pop_cart_7d, 0) as pop_cart_7d,
        coalesce(activity.pop_fav_7d, 0) as pop_fav_7d,
        coalesce(activity.pop_purchase_7d, 0) as pop_purchase_7d,
        coalesce(activity.n_buyers_total, 0) as n_buyers_total,
        {{ as_double("coalesce(activity.popularity_score, 0)") }} as popularity_score,
        -- > 1: viewed more in the last day than its 7-day daily average (+1 smoothing)
        {{ as_double("(coalesce(activity.pop_browse_1d, 0) + 1e0) / (coalesce(activity.pop_browse_7d, 0) / 7e0 + 1)") }}
            as trend_1d_7d,
        {{ as_double("coalesce(activity.n_cart_30d, 0) * 1e0 / (coalesce(activity.pop_browse_30d, 0) + 1)") }}
            as view_to_cart_rate,
        {{ as_double("coalesce(activity.n_purchase_30d, 0) * 1e0 / (coalesce(activity.n_cart_30d, 0) + 1)") }}
            as cart_to_purchase_rate,
        {{ as_double("percent_rank() over (partition by items.category_id order by items.price)") }}
            as price_pct_in_category,
        {{ as_double("greatest(coalesce(timestampdiff(second, items.created_ts, as_of.as_of_ts), 0), 0) / 86400e0") }}
            as age_days,
        activity.last_event_ts
    from items
    cross join as_of
    left join activity on items.item_id = activity.item_id
)

select * from final
