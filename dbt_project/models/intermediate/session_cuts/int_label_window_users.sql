{{ config(enabled=var('cut_ts', none) is not none) }}

{#- Point-in-time builds only: the users with an event in the cut's label window
    [cut_ts, cut_ts + label_hours), the only users a training cut's models learn from or are
    evaluated on (ml_labels holds nobody else; the holdouts evaluate users with an item event there).
    With the var label_window_users (set by ml.features.datasets.load_cut) int_realtime_user_events
    computes the per-user realtime models (session intent, candidates) for them alone, as OTTO
    solutions generate candidates only for the sessions they score: a user's rows depend on their own
    events and the item-level marts only (the refresh relies on it), so those users' rows are the same
    as in a build for everyone. Only user ids leave the window: no feature reads these events. -#}
{%- set label_minutes = (var('label_hours') * 60) | round | int %}

with future_events as (
    select * from {{ ref('stg_recsys__user_behavior_unbounded') }}
),

final as (
    select distinct future_events.user_id
    from future_events
    where
        future_events.event_ts >= {{ cut_ts_literal() }}
        and future_events.event_ts < {{ cut_ts_literal() }} + interval {{ label_minutes }} minute
)

select * from final
