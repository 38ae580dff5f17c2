{{ config(post_hook="{{ add_keys('item_id', {'ix_category_pop': ['category_id', 'popularity_score']}) }}") }}

{%- set popularity_days = var('popularity_days') | int %}
{%- set popularity_half_life = var('popularity_half_life_hours') | float %}
{%- set short_hours = var('trend_short_hours') | float %}
{%- set short_minutes = (short_hours * 60) | round | int %}

with events as (
    select * from {{ ref('int_events_enriched') }}
),

items as (
    select * from {{ ref('stg_recsys__items') }}
),

user_items as (
    select * from {{ ref('int_user_items_aggregated') }}
),

as_of as (
    {{ as_of_sql(ref('int_events_enriched')) }}
),

-- hours of "the last day" the log covers: 24, or less for a log that started within the last day
-- (never under the short window), so short-vs-day trends compare rates over time the log saw
day_span as (
    select
        least(
            24e0,
            greatest(
                coalesce({{ hours_between('min(events.event_ts)', 'max(as_of.as_of_ts)') }}, 24e0),
                {{ short_hours }}
            )
        ) as day_hours
    from events
    cross join as_of
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
        {{ count_if("behavior_type = 'browse' and event_ts >= as_of_ts - interval " ~ short_minutes ~ " minute") }}
            as pop_browse_short,
        {{ count_if("behavior_type = 'purchase' and event_ts >= as_of_ts - interval " ~ short_minutes ~ " minute") }}
            as pop_purchase_short,
        {{ count_if("behavior_type = 'browse' and event_ts >= as_of_ts - interval 1 day") }} as pop_browse_1d,
        {{ count_if("behavior_type = 'purchase' and event_ts >= as_of_ts - interval 1 day") }} as pop_purchase_1d,
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

-- buyers who bought the item again (in another session): how re-bought the item is
repeat_buyers as (
    select
        item_id,
        count(*) as n_buyers,
        {{ count_if('n_purchase_sessions >= 2') }} as n_repeat_buyers
    from user_items
    where n_purchase_sessions >= 1
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
        coalesce(activity.pop_purchase_1d, 0) as pop_purchase_1d,
        coalesce(activity.pop_purchase_7d, 0) as pop_purchase_7d,
        coalesce(activity.n_buyers_total, 0) as n_buyers_total,
        {{ as_double("coalesce(activity.popularity_score, 0)") }} as popularity_score,
        -- > 1: viewed more in the last day than its 7-day daily average (+1 smoothing)
        {{ as_double("(coalesce(activity.pop_browse_1d, 0) + 1e0) / (coalesce(activity.pop_browse_7d, 0) / 7e0 + 1)") }}
            as trend_1d_7d,
        {{ as_double(
            "(coalesce(activity.pop_purchase_1d, 0) + 1e0) / (coalesce(activity.pop_purchase_7d, 0) / 7e0 + 1)"
        ) }} as trend_purchase_1d_7d,
        -- > 1: more views (purchases) in the last trend_short_hours than the last day's hourly rate
        -- predicts (+1 smoothing); the day is day_span.day_hours long
        coalesce(activity.pop_browse_short, 0) as pop_browse_short,
        coalesce(activity.pop_purchase_short, 0) as pop_purchase_short,
        {{ as_double(
            "(coalesce(activity.pop_browse_short, 0) + 1e0) / (coalesce(activity.pop_browse_1d, 0) * "
            ~ short_hours ~ " / day_span.day_hours + 1)"
        ) }} as trend_short_1d,
        {{ as_double(
            "(coalesce(activity.pop_purchase_short, 0) + 1e0) / (coalesce(activity.pop_purchase_1d, 0) * "
            ~ short_hours ~ " / day_span.day_hours + 1)"
        ) }} as trend_purchase_short_1d,
        coalesce(repeat_buyers.n_repeat_buyers, 0) as n_repeat_buyers,
        {{ as_double("coalesce(repeat_buyers.n_repeat_buyers / repeat_buyers.n_buyers, 0)") }}
            as repeat_buyer_rate,
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
    cross join day_span
    left join activity on items.item_id = activity.item_id
    left join repeat_buyers on items.item_id = repeat_buyers.item_id
)

select * from final
