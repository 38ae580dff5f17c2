{#- Every model goes to one database: {prefix}recsys_marts (the profile's schema), or
    {prefix}recsys_pit when the var cut_ts is set (point-in-time builds for training/evaluation),
    so a point-in-time build can never overwrite the serving marts. Custom schemas are ignored:
    on MySQL a dbt "schema" is a database, and we keep exactly one per mode. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if var('cut_ts', none) is not none -%}
        {{ env_var('RECSYS_DB_PREFIX', '') ~ 'recsys_pit' }}
    {%- else -%}
        {{ target.schema }}
    {%- endif -%}
{%- endmacro %}
