-- Both marts must account for every flight of the day; error() fails the statement (and
-- so the task) with the message.
SELECT error('mart_delays_by_carrier has ' || m.n || ' flights for ' || $ds
             || ' but the warehouse has ' || f.n)
FROM (SELECT coalesce(sum(flights), 0) AS n FROM mart_delays_by_carrier
      WHERE flight_date = $ds) AS m,
     (SELECT count(*) AS n FROM flights WHERE flight_date = $ds) AS f
WHERE m.n <> f.n;

SELECT error('mart_delays_by_origin has ' || m.n || ' flights for ' || $ds
             || ' but the warehouse has ' || f.n)
FROM (SELECT coalesce(sum(flights), 0) AS n FROM mart_delays_by_origin
      WHERE flight_date = $ds) AS m,
     (SELECT count(*) AS n FROM flights WHERE flight_date = $ds) AS f
WHERE m.n <> f.n;
