{{ config(
    pre_hook="{{ delete_recomputed_keys('user_id', 'select user_id from ' ~ ref('int_realtime_user_events')) }}",
    post_hook="{{ add_keys(['user_id', 'query_norm'], {'ix_user_rn': ['user_id', 'rn']}) }}",
) }}
{{ assert_realtime_upstream_is_full(source('recsys_state', 'realtime_watermarks')) }}

{#- Each user's last recent_queries_k (5) distinct normalised queries over the realtime history
    (int_realtime_user_events: the realtime_history_days before the user's last event), rn 1 = the
    most recently searched, with the last time and the number of searches. The refresh personalises
    the lists of these queries. Incremental like fct_session_intent: the users of this run are
    replaced (the pre-hook deletes them first: a user whose queries all left the window has none). -#}
{%- set k = var('recent_queries_k') | int %}

with user_events as (
    select * from {{ ref('int_realtime_user_events') }}
),

user_queries as (
    select
        user_id,
        nullif({{ normalize_query('query_text') }}, '') as query_norm,
        event_ts
    from user_events
    where behavior_type = 'search'
),

distinct_queries as (
    select
        user_id,
        -- one spelling per query (the smallest binary one of those the collation equates)
        cast(min(query_norm collate utf8mb4_bin) as char(100)) collate utf8mb4_unicode_ci as query_norm,
        cast(count(*) as signed) as n_searches,
        max(event_ts) as last_ts
    from user_queries
    where query_norm is not null
    group by user_id, query_norm
),

ranked as (
    select
        distinct_queries.*,
        row_number() over (
            partition by distinct_queries.user_id
            order by distinct_queries.last_ts desc, distinct_queries.query_norm
        ) as rn
    from distinct_queries
),

final as (
    select
        user_id,
        rn,
        query_norm,
        last_ts,
        n_searches
    from ranked
    where rn <= {{ k }}
)

select * from final
