-- The gateway's edge store (clients, operators, sessions) is a database of its own next to
-- core's: the gateway is never given core's database.
CREATE DATABASE sigess_edge OWNER sigess;
