update minion_jobs set lock_until = now() + ($1::double precision * interval '1 millisecond'), updated_at = now()
       where id = $2 and lock_token = $3 and status = 'active'
       returning id