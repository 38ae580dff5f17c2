{#- Tables of a point-in-time build are scratch: rebuilt from raw events for every cut of a training
    run, read once by ml.features.datasets.load_cut, then replaced by the next cut's. On MariaDB they
    are written as Aria tables without transaction logging (`engine=Aria transactional=0`): no undo
    or redo log for data that is never updated, and the window sorts and joins over them run faster;
    on the 1M-event shop a cut's plain build went 127 -> 105 s and its rest-of-session build 92 ->
    63 s (docs/scaling.md). The serving marts (no cut_ts) stay in the server's default engine
    (InnoDB): they are read while the next build runs, and a crash must not leave them half written.
    var pit_engine: 'auto' (Aria where the server has it, e.g. MariaDB; the default engine on MySQL,
    which has no Aria), 'default' (never override), or an engine name the server must support.
    dispatch('create_table_as') picks this mysql__ version from the root project first; the body
    is dbt-mysql 1.7's with the table options added. -#}
{% macro mysql__create_table_as(temporary, relation, sql) -%}
  {%- set sql_header = config.get('sql_header', none) -%}

  {{ sql_header if sql_header is not none }}

  create {% if temporary: -%}temporary{%- endif %} table
    {{ relation.include(database=False) }}
    {% set contract_config = config.get('contract') %}
    {% if contract_config.enforced %}
      {{ get_assert_columns_equivalent(sql) }}
      {{ get_table_columns_and_constraints() }}
      {%- set sql = get_select_subquery(sql) %}
    {% endif %}
    {{ pit_table_options() if not temporary }}
    {% if not contract_config.enforced %}as{% endif %}
    (
      {{ sql }}
    )
{%- endmacro %}

{#- The table options of a point-in-time table ('' outside a point-in-time build). -#}
{% macro pit_table_options() -%}
    {%- if not execute or not is_point_in_time() -%}{{ return('') }}{%- endif -%}
    {%- set wanted = var('pit_engine', 'auto') | string -%}
    {%- if wanted == 'default' -%}{{ return('') }}{%- endif -%}
    {%- set engine = 'Aria' if wanted == 'auto' else wanted -%}
    {%- set q -%}
        select count(*) from information_schema.engines
        where lower(engine) = lower('{{ engine | replace("'", "") }}') and support in ('YES', 'DEFAULT')
    {%- endset -%}
    {%- set supported = run_query(q).columns[0].values()[0] > 0 -%}
    {%- if not supported -%}
        {%- if wanted == 'auto' -%}{{ return('') }}{%- endif -%}
        {{ exceptions.raise_compiler_error("var pit_engine: the server has no usable engine '" ~ wanted ~ "'") }}
    {%- endif -%}
    {{ return('engine=Aria transactional=0' if engine | lower == 'aria' else 'engine=' ~ engine) }}
{%- endmacro %}
