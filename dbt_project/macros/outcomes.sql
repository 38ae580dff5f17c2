{#- Outcome marts (models/marts/outcomes): the attribution window and the online metrics. -#}

{#- var outcome_window_hours as whole minutes; fails loudly on a window that is not > 0. -#}
{% macro outcome_window_minutes() -%}
    {%- set hours = var('outcome_window_hours') | float -%}
    {%- if hours <= 0 -%}
        {{ exceptions.raise_compiler_error(
            "var outcome_window_hours must be a number > 0, got '" ~ var('outcome_window_hours') ~ "'"
        ) }}
    {%- endif -%}
    {{ return([(hours * 60) | round | int, 1] | max) }}
{%- endmacro %}

{#- The online metrics of fct_served_outcomes grouped by `group_columns` (GROUP BY puts NULLs in
    one group: impressions without a model version or arm are reported, not dropped). Rates are
    over matured, attributable impressions only (an immature impression's outcome is unknown yet,
    an anonymous one's is unknowable); counts come with every rate so that a reader can pool or
    interval them. NULL rate = no denominator. Definitions: models/marts/outcomes/_outcomes__models.yml. -#}
{% macro online_metrics(outcomes, catalogue, group_columns) -%}
    {%- set k = 10 -%}
    {%- set rated = "is_matured = 1 and is_attributable = 1" -%}
    {%- set rated_top = rated ~ " and impression_rank <= " ~ k -%}
with outcomes as (
    select * from {{ outcomes }}
),

catalogue as (
    select cast(count(*) as signed) as catalogue_items from {{ catalogue }}
),

counted as (
    select
        {{ group_columns | join(',\n        ') }},
        cast(count(*) as signed) as impressions,
        {{ count_if("is_attributable = 0") }} as anonymous_impressions,
        cast(count(distinct request_id) as signed) as lists,
        cast(count(distinct user_id) as signed) as users,
        {{ count_if(rated) }} as matured_impressions,
        {{ count_if(rated_top) }} as matured_impressions_at_{{ k }},
        {{ count_if(rated_top ~ " and clicked = 1") }} as clicks_at_{{ k }},
        cast(count(distinct case when {{ rated_top }} then request_id end) as signed)
            as matured_lists_at_{{ k }},
        cast(count(distinct case when {{ rated_top }} and clicked = 1 then request_id end) as signed)
            as clicked_lists_at_{{ k }},
        {{ count_if(rated ~ " and carted = 1") }} as carts,
        {{ count_if(rated ~ " and purchased = 1") }} as purchases,
        cast(count(distinct item_id) as signed) as items_shown,
        {{ count_if("is_attributable = 1") }} as attributable_impressions,
        {{ count_if("is_repeat = 1") }} as repeat_impressions
    from outcomes
    group by {{ group_columns | join(', ') }}
),

final as (
    select
        counted.*,
        {{ rate("clicks_at_" ~ k, "matured_impressions_at_" ~ k) }} as ctr_at_{{ k }},
        {{ rate("clicked_lists_at_" ~ k, "matured_lists_at_" ~ k) }} as list_ctr_at_{{ k }},
        {{ rate("carts", "matured_impressions") }} as cart_rate,
        {{ rate("purchases", "matured_impressions") }} as purchase_rate,
        {{ rate("items_shown", "catalogue.catalogue_items") }} as coverage,
        {{ rate("repeat_impressions", "attributable_impressions") }} as repeat_share
    from counted
    cross join catalogue
)

select * from final
{%- endmacro %}


{#- numerator / denominator as DOUBLE, NULL when the denominator is 0 (the numerator is cast first:
    an integer division returns a DECIMAL of div_precision_increment = 4 digits). -#}
{% macro rate(numerator, denominator) -%}
    {{ as_double(numerator) }} / nullif({{ denominator }}, 0)
{%- endmacro %}
