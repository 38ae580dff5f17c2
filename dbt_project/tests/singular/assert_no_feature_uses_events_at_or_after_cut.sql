{#- Leakage test (point-in-time builds only). Every feature model carries the newest event time
    it was computed from; all must be before cut_ts. The event count behind the features must
    equal the raw events before the cut, and labels must lie inside [cut_ts, cut_ts + label_hours).
    Returns one row per violation. -#}
{{ config(enabled=var('cut_ts', none) is not none, tags=['pit']) }}

{%- set cut = cut_ts_literal() %}
{%- set feature_models = [
    ('int_events_enriched', 'event_ts'),
    ('int_user_items_aggregated', 'last_event_ts'),
    ('dim_users', 'last_event_ts'),
    ('dim_items', 'last_event_ts'),
    ('fct_session_intent', 'last_event_ts'),
    ('ml_covisitation', 'last_event_ts'),
    ('ml_candidates', 'last_event_ts'),
] %}

with violations as (
    {%- for model, column in feature_models %}
    select '{{ model }}' as model_name, cast(max({{ column }}) as char) as detail
    from {{ ref(model) }}
    having max({{ column }}) >= {{ cut }}
    union all
    {%- endfor %}
    select 'int_events_enriched: event count differs from raw events before the cut', cast(n_features as char)
    from (
        select
            (select count(*) from {{ ref('int_events_enriched') }}) as n_features,
            (select count(*) from {{ ref('stg_recsys__user_behavior_unbounded') }} where event_ts < {{ cut }}) as n_raw
    ) as counts
    where n_features <> n_raw
    union all
    select 'dim_users: n_events_total differs from raw events before the cut', cast(n_features as char)
    from (
        select
            (select coalesce(sum(n_events_total), 0) from {{ ref('dim_users') }}) as n_features,
            (select count(*) from {{ ref('stg_recsys__user_behavior_unbounded') }} where event_ts < {{ cut }}) as n_raw
    ) as counts
    where n_features <> n_raw
    union all
    select 'ml_labels: label outside the window', cast(min(first_label_ts) as char)
    from {{ ref('ml_labels') }}
    having min(first_label_ts) < {{ cut }}
        or max(last_label_ts) >= {{ cut }} + interval {{ var('label_hours') | int }} hour
)

select * from violations
