{#- Overrides dbt-mysql's incremental_delete (macros/materializations/incremental/helpers.sql).
    The adapter's `delete ... where key in (select key from tmp)` runs as a dependent subquery on
    MySQL/MariaDB (minutes for 10k keys into 200k rows). A multi-table DELETE with a join against
    the distinct keys uses the target's primary key instead (about a second). Full table names on
    the target: MySQL rejects aliases here without a default database. -#}
{% macro incremental_delete(tmp_relation, target_relation, unique_key=none, statement_name="pre_main") %}
    {%- if unique_key is not none and unique_key | length -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    delete {{ target_relation }}
    from {{ target_relation }}
    inner join (
        select distinct {{ keys | join(', ') }} from {{ tmp_relation }}
    ) as dbt_changed_keys
        on {% for k in keys -%}
            {{ target_relation }}.{{ k }} = dbt_changed_keys.{{ k }}{{ ' and ' if not loop.last }}
        {%- endfor %}
    {%- endif %}
{%- endmacro %}

{#- Pre-hook of an incremental mart whose recomputed keys may end with no rows at all (a query whose
    engagements a later search took over, a user whose queries left the history window): delete+insert
    only replaces the keys present in the new rows, so this deletes every recomputed key first.
    `keys_sql` selects the keys this run recomputes. No-op on a build from scratch.
      pre_hook="{{ delete_recomputed_keys('user_id', 'select user_id from ' ~ ref('int_realtime_user_events')) }}" -#}
{% macro delete_recomputed_keys(key, keys_sql) -%}
    {%- if is_incremental() -%}
    delete {{ this }}
    from {{ this }}
    inner join (
        select distinct recomputed.{{ key }} from ({{ keys_sql }}) as recomputed
    ) as dbt_recomputed_keys
        on {{ this }}.{{ key }} = dbt_recomputed_keys.{{ key }}
    {%- else -%}
    do 0
    {%- endif -%}
{%- endmacro %}
