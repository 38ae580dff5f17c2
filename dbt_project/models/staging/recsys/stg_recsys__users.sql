with source as (
    select * from {{ source('recsys', 'users') }}
),

renamed as (
    select
        user_id,
        nullif(upper(trim(gender)), '') as gender,
        cast(age as signed) as age,
        nullif(trim(location), '') as location,
        signup_ts
    from source
)

select * from renamed
