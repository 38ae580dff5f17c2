{#- Online metrics per served day x model version, over all its list sources, arms and endpoints:
    what the train DAG logs to the version's MLflow run (users, lists and coverage count distinct
    values, so they cannot be summed from rpt_model_online_metrics). -#}
{{ online_metrics(
    ref('fct_served_outcomes'),
    ref('stg_recsys__items'),
    ['served_date', 'model_version'],
) }}
