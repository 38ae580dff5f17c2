{#- One row per user x item from a relation/CTE of events (item events only): counts per type, the
    last time of each, and the purchase occasions (distinct sessions and days with a purchase of the
    item, first and last purchase) that the repeat-purchase features of int_user_items_aggregated
    read. -#}
{% macro user_items_aggregate_sql(events) -%}
select
    user_id,
    item_id,
    {{ count_if("behavior_type = 'browse'") }} as n_browse,
    {{ count_if("behavior_type = 'cart'") }} as n_cart,
    {{ count_if("behavior_type = 'fav'") }} as n_fav,
    {{ count_if("behavior_type = 'purchase'") }} as n_purchase,
    min(event_ts) as first_event_ts,
    max(event_ts) as last_event_ts,
    max(case when behavior_type = 'browse' then event_ts end) as last_browse_ts,
    max(case when behavior_type = 'cart' then event_ts end) as last_cart_ts,
    max(case when behavior_type = 'fav' then event_ts end) as last_fav_ts,
    max(case when behavior_type = 'purchase' then event_ts end) as last_purchase_ts,
    min(case when behavior_type = 'purchase' then event_ts end) as first_purchase_ts,
    cast(count(distinct case when behavior_type = 'purchase' then session_id end) as signed) as n_purchase_sessions,
    cast(count(distinct case when behavior_type = 'purchase' then date(event_ts) end) as signed) as n_purchase_days,
    cast(
        max(case when behavior_type = 'cart' then event_ts end) is not null
        and (
            max(case when behavior_type = 'purchase' then event_ts end) is null
            or max(case when behavior_type = 'purchase' then event_ts end)
            < max(case when behavior_type = 'cart' then event_ts end)
        ) as signed
    ) as carted_not_bought
from {{ events }}
where item_id is not null
group by user_id, item_id
{%- endmacro %}
