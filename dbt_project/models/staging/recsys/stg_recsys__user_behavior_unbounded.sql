{#- Every event, not cut at cut_ts: ONLY ml_labels may read this (the label window lies after the
    cut). tests/data/test_dbt_marts.py checks that no other model depends on it. -#}
{{ stg_user_behavior_sql(upper_bound=none) }}
