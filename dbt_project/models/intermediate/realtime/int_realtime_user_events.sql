{{ config(post_hook=[
    "{{ add_keys('event_id', {'ix_user_session': ['user_id', 'session_id', 'event_ts']}) }}",
    "{{ record_realtime_watermark(realtime_watermark_literal(source('recsys_state', 'realtime_watermarks'))) }}",
]) }}

{#- The events of the users the realtime marts must recompute, with their item category, so
    fct_session_intent and the candidate generators read one table instead of re-running the
    staging view for every CTE. Only the last `realtime_history_days` before each user's last event
    are kept: the realtime features look at recent behaviour, and the cost stays bounded for long
    histories. Keyed (the ALTER also refreshes the statistics): without keys, and with the "1 row"
    estimate of a just-created table, MariaDB runs the session self-joins as nested loops.
    Which users: on a full build (first run, --full-refresh, or a point-in-time build) every user;
    otherwise the users with an event after the realtime watermark, i.e. the older of the realtime
    marts' watermarks in the state table recsys_state.realtime_watermarks (macros/realtime_state.sql),
    so a mart whose last run failed catches up on the next one. The watermark is a raw event_id
    (ingestion order), not an event time: an event backfilled with an old timestamp still has a new
    id, and one from a fast clock hides nobody's later events. The post-hook records the watermark
    this build used (NULL: every user). A "rest of session" build (ml.features.dbt.build_session_cut,
    on top of the plain build of the same cut) computes only the evaluated users
    (stg_recsys_pit__session_cuts): nobody else has a label in it. A point-in-time build with the var
    label_window_users (a training cut) keeps only the users who act in the label window
    (int_label_window_users): nobody else is learned from or evaluated. -#}
/* depends_on: {{ ref('int_session_prefix_events') }} */
{%- if is_point_in_time() %}
/* depends_on: {{ ref('int_label_window_users') }} */
{%- endif %}
{%- set watermark = realtime_watermark(source('recsys_state', 'realtime_watermarks')) %}
{%- set history_days = var('realtime_history_days') | int %}
{%- set session_users_only = is_point_in_time() and var('session_cuts', false) %}
{%- set label_window_only = is_point_in_time() and var('label_window_users', false) %}

with events as (
    -- a point-in-time build materialises the same bounded events in int_events_enriched first:
    -- reading them there skips the staging view's de-duplication (twice here, ~8 s per pass on 1M events)
    select
        event_id,
        user_id,
        item_id,
        session_id,
        behavior_type,
        query_text,
        event_ts
    {%- if session_users_only and var('realtime_from_plain', false) %}
    -- right after the plain build of the cut this table still holds its rows, every event of a
    -- listed user this build needs among them (ml.features.dbt.build_session_cut): ~1/3 of the work
    from {{ this }}
    {%- else %}
    from {{ ref('int_events_enriched') if is_point_in_time() else ref('stg_recsys__user_behavior') }}
    {%- endif %}
    -- a session or label-window build's users, filtered before the union: the CTE is read twice
    -- below (the users' last events, their history), and MariaDB materialises it each time
    {%- if session_users_only %}
    where user_id in (select session_cuts.user_id from {{ ref('stg_recsys_pit__session_cuts') }} as session_cuts)
    {%- elif label_window_only %}
    where user_id in (select window_users.user_id from {{ ref('int_label_window_users') }} as window_users)
    {%- endif %}
    {%- if is_point_in_time() and var('session_cuts', false) %}
    -- a "rest of session" evaluation build adds each evaluated user's revealed session start
    -- (only then: the union would keep the refresh's watermark filter off the raw indexes)
    union all
    select
        prefix.event_id,
        prefix.user_id,
        prefix.item_id,
        prefix.session_id,
        prefix.behavior_type,
        prefix.query_text,
        prefix.event_ts
    from {{ ref('int_session_prefix_events') }} as prefix
    {%- endif %}
),

items as (
    select
        item_id,
        category_id
    from {{ ref('stg_recsys__items') }}
),

-- the users to recompute and their last event (over all their events: a new event may be backdated)
changed_users as (
    select
        user_id,
        max(event_ts) as user_last_event_ts
    from events
    {%- if watermark is not none %}
    where
        user_id in (
            select new_events.user_id from events as new_events
            where new_events.event_id > {{ watermark | int }}
        )
    {%- endif %}
    group by user_id
),

-- their history, bounded per user (not per run) so incremental and full builds agree
final as (
    select
        events.event_id,
        events.user_id,
        events.session_id,
        events.item_id,
        events.behavior_type,
        events.query_text,
        events.event_ts,
        items.category_id,
        changed_users.user_last_event_ts
    from events
    inner join changed_users
        on
            events.user_id = changed_users.user_id
            and events.event_ts >= changed_users.user_last_event_ts - interval {{ history_days }} day
    left join items on events.item_id = items.item_id
)

select * from final
