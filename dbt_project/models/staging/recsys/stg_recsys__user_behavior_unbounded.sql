{#- Every event, not cut at cut_ts: ONLY ml_labels (the label window lies after the cut) and
    int_session_prefix_events (a user's events up to their own session cut) may read this.
    tests/data/test_dbt_marts.py checks that no other model depends on it. -#}
{{ stg_user_behavior_sql(upper_bound=none) }}
