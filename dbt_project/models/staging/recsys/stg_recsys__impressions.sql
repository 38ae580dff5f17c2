-- What was shown: one row per served item (raw impressions, renamed). With the var cut_ts set only
-- impressions served before it, like every feature view (point-in-time builds never see later ones).
with source as (
    select * from {{ source('recsys', 'impressions') }}
),

renamed as (
    select
        impression_id,
        request_id,
        user_id,
        item_id,
        `rank` as impression_rank,
        model_version,
        list_source,
        arm,
        endpoint,
        served_at
    from source
    {%- if is_point_in_time() %}
    where served_at < {{ cut_ts_literal() }}
    {%- endif %}
)

select * from renamed
