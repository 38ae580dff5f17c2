{#- Primary key and secondary indexes for post_hooks (dbt-mysql has no `indexes` config), as ONE
    `alter table` so InnoDB rebuilds the table once. Without keys, relationship tests and joins
    on the marts scan whole tables. On an incremental run the keys already exist: no-op.
      post_hook="{{ add_keys(['user_id', 'item_id'], {'ix_last_event_ts': ['last_event_ts']}) }}" -#}
{% macro add_keys(primary_key, indexes={}) -%}
    {%- set pk = [primary_key] if primary_key is string else primary_key -%}
    {%- set clauses = [] -%}
    {%- if execute -%}
        {%- set existing = _index_names(this) -%}
        {%- if 'PRIMARY' not in existing -%}
            {%- do clauses.append('add primary key (' ~ pk | join(', ') ~ ')') -%}
        {%- endif -%}
        {%- for name, columns in indexes.items() if name not in existing -%}
            {%- set cols = [columns] if columns is string else columns -%}
            {%- do clauses.append('add index ' ~ name ~ ' (' ~ cols | join(', ') ~ ')') -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if clauses -%}
        alter table {{ this }} {{ clauses | join(', ') }}
    {%- else -%}
        do 0
    {%- endif -%}
{%- endmacro %}

{% macro _index_names(relation) -%}
    {%- set q -%}
        select distinct index_name from information_schema.statistics
        where table_schema = '{{ relation.schema }}' and table_name = '{{ relation.identifier }}'
    {%- endset -%}
    {{ return(run_query(q).columns[0].values() | list) }}
{%- endmacro %}

{#- Pre-hook of every model: larger in-memory temp tables and sort buffer for this connection. -#}
{% macro session_memory() -%}
    {%- set bytes = (var('session_tmp_table_mb') | int) * 1024 * 1024 -%}
    set session tmp_table_size = {{ bytes }}, max_heap_table_size = {{ bytes }},
        sort_buffer_size = {{ [bytes // 8, 33554432] | min }}
{%- endmacro %}
