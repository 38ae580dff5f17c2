{#- "Rest of session" point-in-time builds only (vars cut_ts and session_cuts): the revealed
    beginning of each evaluated user's session, i.e. that user's events of that session in
    [cut_ts, the user's own cut), as listed in {prefix}recsys_pit.pit_session_cuts (written by
    ml.datasets.load_session_cut). Only the realtime models read it (what the refresh DAG recomputes
    every few minutes); batch features stay at cut_ts. Empty in every other build. -#}
with events as (
    select * from {{ ref('stg_recsys__user_behavior_unbounded') }}
)

{%- if is_point_in_time() and var('session_cuts', false) %}

select events.*
from events
inner join {{ source('recsys_pit', 'pit_session_cuts') }} as session_cuts
    on session_cuts.user_id = events.user_id
    and session_cuts.session_id = events.session_id
where events.event_ts >= {{ cut_ts_literal() }}
  and events.event_ts < session_cuts.cut_ts
{%- else %}

select events.* from events where 1 = 0
{%- endif %}
