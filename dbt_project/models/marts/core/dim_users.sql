{{ config(post_hook="{{ add_keys('user_id') }}") }}

with events as (
    select * from {{ ref('int_events_enriched') }}
),

users as (
    select * from {{ ref('stg_recsys__users') }}
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
        user_id,
        {{ count_if("behavior_type = 'browse' and event_ts >= as_of_ts - interval 1 day") }} as n_browse_1d,
        {{ count_if("behavior_type = 'browse' and event_ts >= as_of_ts - interval 7 day") }} as n_browse_7d,
        {{ count_if("behavior_type = 'browse' and event_ts >= as_of_ts - interval 30 day") }} as n_browse_30d,
        {{ count_if("behavior_type = 'cart' and event_ts >= as_of_ts - interval 7 day") }} as n_cart_7d,
        {{ count_if("behavior_type = 'cart' and event_ts >= as_of_ts - interval 30 day") }} as n_cart_30d,
        {{ count_if("behavior_type = 'fav' and event_ts >= as_of_ts - interval 30 day") }} as n_fav_30d,
        {{ count_if("behavior_type = 'purchase' and event_ts >= as_of_ts - interval 30 day") }} as n_purchase_30d,
        {{ count_if("behavior_type = 'search' and event_ts >= as_of_ts - interval 7 day") }} as n_search_7d,
        {{ count_if("behavior_type = 'purchase'") }} as n_purchase_total,
        {{ count_if("behavior_type = 'browse'") }} as n_browse_total,
        cast(count(*) as signed) as n_events_total,
        cast(count(distinct case when event_ts >= as_of_ts - interval 30 day then session_id end) as signed)
            as n_sessions_30d,
        {{ as_double(
            "avg(case when behavior_type = 'browse' and event_ts >= as_of_ts - interval 30 day then price end)"
        ) }} as avg_price_viewed,
        {{ as_double("avg(case when behavior_type = 'purchase' then price end)") }} as avg_price_purchased,
        min(event_ts) as first_event_ts,
        max(event_ts) as last_event_ts,
        max(as_of_ts) as as_of_ts
    from dated_events
    group by user_id
),

-- affinity: type-weighted (event_weights.affinity), time-decayed (half-life 7 days) share of the
-- user's item events
category_scores as (
    select
        events.user_id,
        events.category_id,
        sum(
            {{ type_weight('events.behavior_type', 'affinity') }}
            * {{ decay('events.event_ts', 'as_of.as_of_ts', 168) }}
        ) as score
    from events
    cross join as_of
    where events.category_id is not null
    group by events.user_id, events.category_id
),

top_category as (
    {{ top_share('category_scores', 'category_id') }}
),

brand_scores as (
    select
        events.user_id,
        events.brand,
        sum(
            {{ type_weight('events.behavior_type', 'affinity') }}
            * {{ decay('events.event_ts', 'as_of.as_of_ts', 168) }}
        ) as score
    from events
    cross join as_of
    where events.brand is not null
    group by events.user_id, events.brand
),

top_brand as (
    {{ top_share('brand_scores', 'brand') }}
),

final as (
    select
        activity.user_id,
        users.gender,
        users.age,
        activity.n_browse_1d,
        activity.n_browse_7d,
        activity.n_browse_30d,
        activity.n_cart_7d,
        activity.n_cart_30d,
        activity.n_fav_30d,
        activity.n_purchase_30d,
        activity.n_search_7d,
        activity.n_events_total,
        activity.n_sessions_30d,
        {{ as_double("activity.n_purchase_total * 1e0 / greatest(activity.n_browse_total, 1)") }} as purchase_rate,
        activity.avg_price_viewed,
        activity.avg_price_purchased,
        {{ as_double("timestampdiff(second, activity.last_event_ts, activity.as_of_ts) / 3600e0") }}
            as hours_since_last_event,
        {{ as_double("timestampdiff(second, activity.first_event_ts, activity.as_of_ts) / 86400e0") }}
            as days_since_first_event,
        top_category.category_id as top_category_id,
        {{ as_double("coalesce(top_category.share, 0)") }} as top_category_share,
        top_brand.brand as top_brand,
        {{ as_double("coalesce(top_brand.share, 0)") }} as top_brand_share,
        activity.first_event_ts,
        activity.last_event_ts
    from activity
    left join users on activity.user_id = users.user_id
    left join top_category on activity.user_id = top_category.user_id
    left join top_brand on activity.user_id = top_brand.user_id
)

select * from final
