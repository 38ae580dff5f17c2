{{ config(post_hook=(
    "{{ add_keys('impression_id', {'ix_served_date': ['served_date', 'model_version'],"
    " 'ix_user_item': ['user_id', 'item_id', 'served_at']}) }}"
)) }}

{#- One row per impression with what the user did with the item afterwards. LAST TOUCH: an item
    event counts for the latest impression of the same item to the same user served before it
    (served_at < event_ts; ties on served_at by the larger impression_id) and at most
    outcome_window_hours earlier, so no event counts twice. Anonymous impressions (user_id NULL)
    stay, unattributable (is_attributable 0, outcomes 0). is_matured: the log's newest event is at
    least a window after served_at (an immature impression is not a miss yet). -#}
{%- set window_minutes = outcome_window_minutes() %}

with impressions as (
    select * from {{ ref('stg_recsys__impressions') }}
),

item_events as (
    select * from {{ ref('int_outcome_events') }}
),

log_end as (
    select max(event_ts) as last_event_ts from {{ ref('int_events_enriched') }}
),

touches as (
    select
        item_events.event_id,
        item_events.behavior_type,
        item_events.event_ts,
        impressions.impression_id,
        row_number() over (
            partition by item_events.event_id
            order by impressions.served_at desc, impressions.impression_id desc
        ) as touch_order
    from impressions
    inner join item_events
        on
            impressions.user_id = item_events.user_id
            and impressions.item_id = item_events.item_id
            and impressions.served_at < item_events.event_ts
            and date_add(impressions.served_at, interval {{ window_minutes }} minute) >= item_events.event_ts
),

credited as (
    select
        impression_id,
        max(case when behavior_type = 'browse' then 1 else 0 end) as clicked,
        max(case when behavior_type in ('cart', 'fav') then 1 else 0 end) as carted,
        max(case when behavior_type = 'purchase' then 1 else 0 end) as purchased,
        min(event_ts) as first_engaged_at
    from touches
    where touch_order = 1
    group by impression_id
),

first_events as (
    select
        user_id,
        item_id,
        min(event_ts) as first_event_ts
    from item_events
    group by user_id, item_id
),

final as (
    select
        impressions.impression_id,
        impressions.request_id,
        impressions.user_id,
        impressions.item_id,
        impressions.impression_rank,
        impressions.model_version,
        impressions.list_source,
        impressions.arm,
        impressions.endpoint,
        impressions.served_at,
        cast(impressions.served_at as date) as served_date,
        cast(impressions.user_id is not null as signed) as is_attributable,
        cast(coalesce(credited.clicked, 0) as signed) as clicked,
        cast(coalesce(credited.carted, 0) as signed) as carted,
        cast(coalesce(credited.purchased, 0) as signed) as purchased,
        credited.first_engaged_at,
        cast(coalesce(first_events.first_event_ts < impressions.served_at, 0) as signed) as is_repeat,
        cast(coalesce(
            date_add(impressions.served_at, interval {{ window_minutes }} minute) <= log_end.last_event_ts, 0
        ) as signed) as is_matured
    from impressions
    cross join log_end
    left join credited on impressions.impression_id = credited.impression_id
    left join first_events
        on impressions.user_id = first_events.user_id and impressions.item_id = first_events.item_id
)

select * from final
