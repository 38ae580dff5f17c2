{#- Online metrics per served day x model version x list source x A/B arm x endpoint (definitions:
    macro online_metrics and _outcomes__models.yml). Small (one row per day and slice): no keys. -#}
{{ online_metrics(
    ref('fct_served_outcomes'),
    ref('stg_recsys__items'),
    ['served_date', 'model_version', 'list_source', 'arm', 'endpoint'],
) }}
