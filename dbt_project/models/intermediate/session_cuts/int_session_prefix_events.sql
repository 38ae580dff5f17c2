{#- "Rest of session" point-in-time builds only (vars cut_ts and session_cuts): the revealed
    beginning of each evaluated user's session, i.e. that user's events of that session in
    [cut_ts, the user's own cut), as listed in stg_recsys_pit__session_cuts. Only
    int_realtime_user_events reads it (the realtime models are what the refresh DAG recomputes
    every few minutes); batch features stay at cut_ts. Empty in every other build. -#}
with events as (
    select * from {{ ref('stg_recsys__user_behavior_unbounded') }}
),

-- read only in a "rest of session" build; referenced always, so that the lineage shows it
session_cuts as (  -- noqa: ST03
    select * from {{ ref('stg_recsys_pit__session_cuts') }}
),

final as (
    select
        events.event_id,
        events.user_id,
        events.item_id,
        events.session_id,
        events.behavior_type,
        events.query_text,
        events.event_ts,
        events.ingested_at
    from events
    {%- if is_point_in_time() and var('session_cuts', false) %}
    inner join session_cuts
        on
            events.user_id = session_cuts.user_id
            and events.session_id = session_cuts.session_id
    where
        events.event_ts >= {{ cut_ts_literal() }}
        and events.event_ts < session_cuts.cut_ts
    {%- else %}
    where 1 = 0
    {%- endif %}
)

select * from final
