{#- Leakage test (point-in-time builds only). Every feature model carries the newest event time
    it was computed from; all must be before cut_ts. The event count behind the features must
    equal the raw events before the cut, and labels must lie inside [cut_ts, cut_ts + label_hours).
    Returns one row per violation. -#}
{{ config(enabled=var('cut_ts', none) is not none, tags=['pit']) }}
/* depends_on: {{ ref('stg_recsys_pit__session_cuts') }} */

{%- set cut = cut_ts_literal() %}
{%- set feature_models = [
    ('int_events_enriched', 'event_ts'),
    ('int_user_items_aggregated', 'last_event_ts'),
    ('dim_users', 'last_event_ts'),
    ('dim_items', 'last_event_ts'),
    ('fct_session_intent', 'last_event_ts'),
    ('ml_covisitation', 'last_event_ts'),
    ('int_user_covisit_neighbours', 'last_event_ts'),
    ('ml_candidates', 'last_event_ts'),
] %}

{#- In a "rest of session" build the realtime models may also see each evaluated user's session
    up to that user's own cut (stg_recsys_pit__session_cuts), and nothing after it. -#}
{%- set session_cuts = var('session_cuts', false) %}
{%- set per_user_models = (
    ['fct_session_intent', 'int_user_covisit_neighbours', 'ml_candidates'] if session_cuts else []
) %}

with event_counts as (
    select
        (select count(*) from {{ ref('int_events_enriched') }}) as n_enriched,
        (select coalesce(sum(n_events_total), 0) from {{ ref('dim_users') }}) as n_dim_users,
        (
            select count(*) from {{ ref('stg_recsys__user_behavior_unbounded') }}
            where event_ts < {{ cut }}
        ) as n_raw
),

count_checks as (
    select 1 as k
    union all
    select 2 as k
),

violations as (
    {%- for model, column in feature_models if model not in per_user_models %}
    select
        '{{ model }}' as model_name,
        cast(max({{ column }}) as char) as detail
    from {{ ref(model) }}
    having max({{ column }}) >= {{ cut }}
    union all
    {%- endfor %}
    {%- for model in per_user_models %}
    select
        '{{ model }}: event at/after the user''s own cut' as model_name,
        cast(max(m.last_event_ts) as char) as detail
    from {{ ref(model) }} as m
    left join {{ ref('stg_recsys_pit__session_cuts') }} as session_cuts on m.user_id = session_cuts.user_id
    having max(m.last_event_ts >= coalesce(session_cuts.cut_ts, {{ cut }})) = 1
    union all
    {%- endfor %}
    {%- if session_cuts %}
    select
        'ml_labels: label of a user without a session cut, or before it' as model_name,
        cast(min(l.first_label_ts) as char) as detail
    from {{ ref('ml_labels') }} as l
    left join {{ ref('stg_recsys_pit__session_cuts') }} as session_cuts on l.user_id = session_cuts.user_id
    having max(session_cuts.user_id is null or l.first_label_ts < session_cuts.cut_ts) = 1
    union all
    {%- endif %}
    -- both event counts against one count of the raw events before the cut (event_counts: the
    -- staging view's de-duplication is the expensive part, one pass instead of one per comparison)
    select
        case count_checks.k
            when 1 then 'int_events_enriched: event count differs from raw events before the cut'
            else 'dim_users: n_events_total differs from raw events before the cut'
        end as model_name,
        cast(
            case count_checks.k when 1 then event_counts.n_enriched else event_counts.n_dim_users end as char
        ) as detail
    from event_counts
    cross join count_checks
    where
        case count_checks.k when 1 then event_counts.n_enriched else event_counts.n_dim_users end
        <> event_counts.n_raw
    union all
    select
        'ml_labels: label outside the window' as model_name,
        cast(min(first_label_ts) as char) as detail
    from {{ ref('ml_labels') }}
    having
        min(first_label_ts) < {{ cut }}
        or max(last_label_ts) >= {{ cut }} + interval {{ (var('label_hours') * 60) | round | int }} minute
)

select * from violations
