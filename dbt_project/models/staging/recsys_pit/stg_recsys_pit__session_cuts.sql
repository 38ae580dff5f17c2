{#- "Rest of session" point-in-time builds only (vars cut_ts and session_cuts): the evaluated users'
    session cuts. In every other build the source table does not exist, and this view is empty
    (with the same columns) so that its readers compile and run unchanged. -#}
{%- if is_point_in_time() and var('session_cuts', false) %}

with source as (
    select * from {{ source('recsys_pit', 'pit_session_cuts') }}
),

renamed as (
    select
        user_id,
        session_id,
        cut_ts
    from source
)

select * from renamed
{%- else %}

select
    cast(null as signed) as user_id,
    cast(null as char(64)) as session_id,
    cast(null as datetime(3)) as cut_ts
from dual
where 1 = 0
{%- endif %}
