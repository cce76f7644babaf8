-- Record that RabbitMQ confirmed these outbox rows.
-- $1 outbox ids (bigint[])
UPDATE outbox
SET published_at = now()
WHERE id = ANY ($1)
  AND published_at IS NULL;
