{#-
  The top-scoring `key` per user from a (user_id, key, score) relation, with its share of the
  user's total score (ties broken by the key). One row per user.
-#}
{% macro top_share(scores, key, share_alias='share') -%}
    select user_id, {{ key }}, score / nullif(total, 0) as {{ share_alias }}
    from (
        select
            {{ scores }}.*,
            sum(score) over (partition by user_id) as total,
            row_number() over (partition by user_id order by score desc, {{ key }}) as rn
        from {{ scores }}
    ) as ranked
    where rn = 1
{%- endmacro %}
