-- Rebuild one day's summary from the raw events. $ds is a bound parameter, never
-- pasted into the text, so a parameter can't change what the statement does.
CREATE TABLE IF NOT EXISTS daily_summary (ds DATE, kind VARCHAR, events INTEGER, amount DOUBLE);
DELETE FROM daily_summary WHERE ds = $ds;
INSERT INTO daily_summary
SELECT ds, kind, count(*) AS events, sum(amount) AS amount
FROM events
WHERE ds = $ds
GROUP BY ds, kind;
