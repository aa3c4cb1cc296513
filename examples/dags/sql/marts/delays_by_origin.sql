-- One day's departure delays per hour at one origin airport, beside that hour's weather.
-- The task runs once per airport (for_each), with $origin bound like $ds.
DELETE FROM mart_delays_by_origin WHERE flight_date = $ds AND origin = $origin;

INSERT INTO mart_delays_by_origin
SELECT f.flight_date,
       f.origin,
       f.hour,
       count(*)                               AS flights,
       round(avg(f.dep_delay), 2)             AS mean_dep_delay,
       quantile_cont(f.dep_delay, 0.9)        AS p90_dep_delay,
       round(avg(w.precip), 3)                AS mean_precip,
       round(avg(w.visib), 2)                 AS mean_visib
FROM flights AS f
LEFT JOIN weather AS w
  ON w.origin = f.origin AND w.time_hour = f.time_hour AND w.weather_date = f.flight_date
WHERE f.flight_date = $ds AND f.origin = $origin
GROUP BY f.flight_date, f.origin, f.hour;
