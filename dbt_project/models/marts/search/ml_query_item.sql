{{ config(
    pre_hook="{{ delete_recomputed_keys('query_norm', 'select query_norm from ' ~ ref('int_search_session_events') ~ ' where recompute_query = 1') }}",
    post_hook="{{ add_keys(['query_norm', 'item_id'], {'ix_item': 'item_id'}) }}",
) }}
{{ assert_realtime_upstream_is_full(source('recsys_state', 'realtime_watermarks'), 'int_search_session_events') }}

{#- Behavioural query -> item relevance: the items shoppers engaged with after searching the query,
    in the same session (int_search_attributions says which search each item event belongs to).
    weighted = the sum over those events of type weight (event_weights.popularity: what popular means
    for an item, now conditioned on the query; a purchase after the query is its strongest evidence)
    x exp(-minutes after the search / query_decay_minutes). Incremental: the queries of this run are
    recomputed over their whole history and replace their rows (the pre-hook deletes them first, so
    a query left with no engagement loses its rows). -#}
/* depends_on: {{ ref('int_search_session_events') }} */
{%- set decay_minutes = var('query_decay_minutes') | float %}

with attributed as (
    select * from {{ ref('int_search_attributions') }}
),

final as (
    select
        query_norm,
        item_id,
        {{ count_if("behavior_type = 'browse'") }} as n_browse,
        {{ count_if("behavior_type = 'cart'") }} as n_cart,
        {{ count_if("behavior_type = 'fav'") }} as n_fav,
        {{ count_if("behavior_type = 'purchase'") }} as n_purchase,
        cast(count(distinct search_event_id) as signed) as n_searches,
        cast(count(distinct user_id) as signed) as n_users,
        {{ as_double(
            "sum(" ~ type_weight('behavior_type', 'popularity')
            ~ " * exp(-minutes_after_search / " ~ decay_minutes ~ "))"
        ) }} as weighted,
        min(event_ts) as first_ts,
        max(event_ts) as last_ts
    from attributed
    group by query_norm, item_id
)

select * from final
