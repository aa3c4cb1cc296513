-- One day's delays per carrier. $ds is a query parameter (a DATE), never pasted into the
-- text; the task's statements run in one transaction, so a re-run replaces the day whole.
DELETE FROM mart_delays_by_carrier WHERE flight_date = $ds;

INSERT INTO mart_delays_by_carrier
SELECT flight_date,
       carrier,
       count(*)                                       AS flights,
       count(*) FILTER (WHERE dep_time IS NULL)       AS cancelled,
       round(avg(dep_delay), 2)                       AS mean_dep_delay,
       round(avg(arr_delay), 2)                       AS mean_arr_delay,
       round(avg(CASE WHEN arr_delay <= 15 THEN 1.0 ELSE 0.0 END)
             FILTER (WHERE arr_delay IS NOT NULL), 3) AS on_time_share
FROM flights
WHERE flight_date = $ds
GROUP BY flight_date, carrier;
