{{ config(post_hook="{{ add_keys(['user_id', 'item_id']) }}") }}

{#- The only model that reads events at/after the cut: [cut_ts, cut_ts + label_hours). Users must
    have been seen before the cut (dim_users), because only they get point-in-time features. -#}
{%- set label_minutes = (var('label_hours') * 60) | round | int %}

with future_events as (
    select * from {{ ref('stg_recsys__user_behavior_unbounded') }}
),

-- read only in a "rest of session" build; referenced always, so that the lineage shows it
session_cuts as (  -- noqa: ST03
    select * from {{ ref('stg_recsys_pit__session_cuts') }}
),

users_seen as (
    select user_id from {{ ref('dim_users') }}
),

-- a "rest of session" build (var session_cuts): only the evaluated users, and only what they do in their
-- session from their own cut on (OTTO's task); the revealed start is an input
window_events as (
    select future_events.*
    from future_events
    {%- if var('session_cuts', false) %}
    inner join session_cuts
        on
            future_events.user_id = session_cuts.user_id
            and future_events.session_id = session_cuts.session_id
            and future_events.event_ts >= session_cuts.cut_ts
    {%- endif %}
    where
        future_events.event_ts >= {{ cut_ts_literal() }}
        and future_events.event_ts < {{ cut_ts_literal() }} + interval {{ label_minutes }} minute
        and future_events.item_id is not null
        and future_events.behavior_type in ('browse', 'cart', 'fav', 'purchase')
),

final as (
    select
        window_events.user_id,
        window_events.item_id,
        cast(max(window_events.behavior_type = 'browse') as signed) as clicked,
        cast(max(window_events.behavior_type = 'cart') as signed) as carted,
        cast(max(window_events.behavior_type = 'purchase') as signed) as purchased,
        cast(max(window_events.behavior_type = 'fav') as signed) as faved,
        min(window_events.event_ts) as first_label_ts,
        max(window_events.event_ts) as last_label_ts
    from window_events
    inner join users_seen on window_events.user_id = users_seen.user_id
    group by window_events.user_id, window_events.item_id
)

select * from final
