{#- Idempotent primary key / secondary index DDL for post_hooks (dbt-mysql has no `indexes`
    config). Without keys, relationship tests and joins on the marts scan whole tables. On an
    incremental run the key already exists, so the hook becomes a no-op. -#}
{% macro add_primary_key(columns) -%}
    {%- set cols = [columns] if columns is string else columns -%}
    {%- if execute and not _has_index(this, 'PRIMARY') -%}
        alter table {{ this }} add primary key ({{ cols | join(', ') }})
    {%- else -%}
        do 0
    {%- endif -%}
{%- endmacro %}

{% macro add_index(name, columns) -%}
    {%- set cols = [columns] if columns is string else columns -%}
    {%- if execute and not _has_index(this, name) -%}
        alter table {{ this }} add index {{ name }} ({{ cols | join(', ') }})
    {%- else -%}
        do 0
    {%- endif -%}
{%- endmacro %}

{% macro _has_index(relation, name) -%}
    {%- set q -%}
        select count(*) from information_schema.statistics
        where table_schema = '{{ relation.schema }}' and table_name = '{{ relation.identifier }}'
          and index_name = '{{ name }}'
    {%- endset -%}
    {%- set result = run_query(q) -%}
    {{ return(result.columns[0].values()[0] | int > 0) }}
{%- endmacro %}
