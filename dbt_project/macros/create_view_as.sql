{#- MariaDB rejects `create view v as ( with ... )` (a parenthesised WITH): write the select bare.
    dispatch('create_view_as') picks this mysql__ version from the root project first. -#}
{% macro mysql__create_view_as(relation, sql) -%}
  {%- set sql_header = config.get('sql_header', none) -%}
  {{ sql_header if sql_header is not none }}
  create view {{ relation }} as
  {{ sql }}
{%- endmacro %}
