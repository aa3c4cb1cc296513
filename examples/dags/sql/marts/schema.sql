-- The marts' tables. Created in their own task, before the tasks that fill them run side
-- by side, so that those never race to create a table.
CREATE TABLE IF NOT EXISTS mart_delays_by_carrier (
    flight_date DATE, carrier VARCHAR, flights INTEGER, cancelled INTEGER,
    mean_dep_delay DOUBLE, mean_arr_delay DOUBLE, on_time_share DOUBLE
);
CREATE TABLE IF NOT EXISTS mart_delays_by_origin (
    flight_date DATE, origin VARCHAR, hour INTEGER, flights INTEGER,
    mean_dep_delay DOUBLE, p90_dep_delay DOUBLE, mean_precip DOUBLE, mean_visib DOUBLE
);
