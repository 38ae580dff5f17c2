{#- Time helpers shared by the models. -#}

{#- True when this is a point-in-time build (var cut_ts set). -#}
{% macro is_point_in_time() -%}
    {{ return(var('cut_ts', none) is not none) }}
{%- endmacro %}

{#- The cut as a SQL literal; fails loudly on a malformed value rather than building wrong data. -#}
{% macro cut_ts_literal() -%}
    {%- if var('cut_ts', none) is none -%}
        {%- if execute -%}
            {{ exceptions.raise_compiler_error("this model needs the var cut_ts (a point-in-time build)") }}
        {%- endif -%}
        {{ return('cast(null as datetime(3))') }}
    {%- endif -%}
    {%- set cut = var('cut_ts') | string -%}
    {%- if not modules.re.match('^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$', cut) -%}
        {{ exceptions.raise_compiler_error("var cut_ts must look like 'YYYY-MM-DD HH:MM:SS', got '" ~ cut ~ "'") }}
    {%- endif -%}
    cast('{{ cut }}' as datetime(3))
{%- endmacro %}

{#- Reference time "now" of the features: the cut in a point-in-time build, else the newest event
    (deterministic, so rebuilding the same events gives the same features). -#}
{% macro as_of_sql(events_relation) -%}
    {%- if is_point_in_time() -%}
        select {{ cut_ts_literal() }} as as_of_ts
    {%- else -%}
        select coalesce(max(event_ts), current_timestamp(3)) as as_of_ts from {{ events_relation }}
    {%- endif -%}
{%- endmacro %}

{#- Exponential decay weight 0.5^(age / half_life) = exp(-ln 2 * age / half_life), age = later_ts -
    earlier_ts in hours (clipped at 0), to the microsecond like the Python side (ml.models.baselines). -#}
{% macro decay(earlier_ts, later_ts, half_life_hours) -%}
    exp(-0.6931471805599453 * greatest(timestampdiff(microsecond, {{ earlier_ts }}, {{ later_ts }}), 0)
        / 3600e6 / ({{ half_life_hours }}))
{%- endmacro %}

{#- Hours from earlier_ts to later_ts, to the microsecond (NULL when either is NULL). -#}
{% macro hours_between(earlier_ts, later_ts) -%}
    timestampdiff(microsecond, {{ earlier_ts }}, {{ later_ts }}) / 3600e6
{%- endmacro %}

{#- Minutes from earlier_ts to later_ts, to the microsecond (NULL when either is NULL). -#}
{% macro minutes_between(earlier_ts, later_ts) -%}
    timestampdiff(microsecond, {{ earlier_ts }}, {{ later_ts }}) / 60e6
{%- endmacro %}

{#- Counts and ratios as BIGINT / DOUBLE (MySQL returns DECIMAL for SUM and division, which pandas
    reads as Python objects). -#}
{% macro count_if(condition) -%}
    cast(sum(case when {{ condition }} then 1 else 0 end) as signed)
{%- endmacro %}

{% macro as_double(expression) -%}
    cast({{ expression }} as double)
{%- endmacro %}
