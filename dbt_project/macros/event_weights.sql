{#- The named event-type weights of dbt_project.yml (var event_weights): one place for every
    weight, read here by the SQL and by the Python side (ml/contracts.py) with PyYAML. -#}

{#- One weight as a DOUBLE literal, e.g. event_weight('covisit', 'cart') -> 3.0e0. -#}
{% macro event_weight(weight_set, behavior_type) -%}
    {%- set weights = _event_weight_set(weight_set) -%}
    {%- if behavior_type not in weights -%}
        {{ exceptions.raise_compiler_error(
            "event_weights." ~ weight_set ~ " has no weight for '" ~ behavior_type ~ "'"
        ) }}
    {%- endif -%}
    {{ _double_literal(weights[behavior_type]) }}
{%- endmacro %}

{#- CASE over a behaviour column: the weight of its type in the set, 0 for types not listed.
      type_weight('behavior_type', 'popularity')
      -> case behavior_type when 'browse' then 1.0e0 ... else 0e0 end -#}
{% macro type_weight(column, weight_set) -%}
    {%- set weights = _event_weight_set(weight_set) -%}
    case {{ column }}
    {%- for behavior_type, weight in weights.items() %} when '{{ behavior_type }}' then {{ _double_literal(weight) }}
    {%- endfor %} else 0e0 end
{%- endmacro %}

{#- The set, checked: a known name, known behaviour types, numeric weights. -#}
{% macro _event_weight_set(weight_set) -%}
    {%- set sets = var('event_weights') -%}
    {%- if weight_set not in sets -%}
        {{ exceptions.raise_compiler_error(
            "unknown event weight set '" ~ weight_set ~ "' (var event_weights has " ~ sets.keys() | list ~ ")"
        ) }}
    {%- endif -%}
    {%- for behavior_type, weight in sets[weight_set].items() -%}
        {%- if behavior_type not in ['search', 'browse', 'cart', 'fav', 'purchase'] or weight is not number -%}
            {{ exceptions.raise_compiler_error(
                "event_weights." ~ weight_set ~ ": '" ~ behavior_type ~ ": " ~ weight
                ~ "' is not a behaviour type with a numeric weight"
            ) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(sets[weight_set]) }}
{%- endmacro %}

{#- A number as a MySQL DOUBLE literal (1.0e0; a plain 1.0 would be DECIMAL). -#}
{% macro _double_literal(value) -%}
    {%- set text = '%r' | format(value | float) -%}
    {{ return(text if 'e' in text else text ~ 'e0') }}
{%- endmacro %}
