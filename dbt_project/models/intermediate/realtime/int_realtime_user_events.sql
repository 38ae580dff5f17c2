{{ config(post_hook="{{ add_keys('event_id', {'ix_user_pos': ['user_id', 'pos_from_end']}) }}") }}

{#- All events of the users the realtime marts must recompute, with the positions they need, so
    fct_session_intent and ml_candidates read one indexed table instead of re-running the staging
    view and its window sorts for every CTE.
    Which users: on a full build (first run, --full-refresh, or a point-in-time build) every user;
    otherwise the users with an event after the older of the two realtime marts' watermarks
    (max last_event_ts), so a mart whose last run failed catches up on the next one. The marts are
    looked up by name, not ref(), because they are downstream of this model. -#}
{%- set watermark = realtime_watermark(['fct_session_intent', 'ml_candidates']) %}

with events as (
    select * from {{ ref('stg_recsys__user_behavior') }}
),

items as (
    select item_id, category_id from {{ ref('stg_recsys__items') }}
),

{% if watermark is not none %}
changed_users as (
    select distinct user_id from events where event_ts > '{{ watermark }}'
),

user_events as (
    select events.*
    from events
    where events.user_id in (select changed_users.user_id from changed_users)
),
{% else %}
user_events as (
    select * from events
),
{% endif %}

positioned as (
    select
        user_events.event_id,
        user_events.user_id,
        user_events.session_id,
        user_events.item_id,
        user_events.behavior_type,
        user_events.query_text,
        user_events.event_ts,
        items.category_id,
        row_number() over (
            partition by user_events.user_id order by user_events.event_ts desc, user_events.event_id desc
        ) as pos_from_end,
        first_value(user_events.session_id) over (
            partition by user_events.user_id order by user_events.event_ts desc, user_events.event_id desc
        ) as last_session_id,
        row_number() over (
            partition by user_events.user_id, user_events.session_id
            order by user_events.event_ts desc, user_events.event_id desc
        ) as pos_in_session_from_end
    from user_events
    left join items on items.item_id = user_events.item_id
),

final as (
    select
        event_id,
        user_id,
        session_id,
        item_id,
        behavior_type,
        query_text,
        event_ts,
        category_id,
        pos_from_end,
        cast(session_id = last_session_id as signed) as in_last_session,
        pos_in_session_from_end
    from positioned
)

select * from final
