// Command zulipsim serves the Zulip-compatible simulator of package
// source/zuliptest over HTTP, for docker compose, demos and manual tests
// of Zulip clients.
//
// Every flag is also an environment variable; a flag given on the command
// line wins over the variable:
//
//	-addr           ZULIPSIM_ADDR           listen address (default 127.0.0.1:9991)
//	-bot EMAIL:KEY  ZULIPSIM_BOT            accepted bot, repeatable; the variable takes a
//	                                        comma-separated list (default: zuliptest.DefaultBot,
//	                                        bridge-bot@zulip.example.com:ZulipSimulatorBridgeBotApiKey001)
//	-rate           ZULIPSIM_RATE           generated events per second, 0 = none (default 0)
//	-heartbeat      ZULIPSIM_HEARTBEAT      idle long-poll heartbeat interval (default 50s)
//	-queue-timeout  ZULIPSIM_QUEUE_TIMEOUT  idle queue lifespan (default 10m)
//	-rate-limit     ZULIPSIM_RATE_LIMIT     requests per minute per bot, 0 = unlimited (default 0)
//	-seed           ZULIPSIM_SEED           traffic generator seed (default 1)
//
// With -probe it does not serve: it GETs /api/v1/server_settings of the
// simulator listening on -addr (ZULIPSIM_ADDR; a wildcard host is reached on
// 127.0.0.1) and exits 0 on 200, 1 otherwise, printing one line: the
// healthcheck of the container image, which has no curl.
//
// It logs its URL and the bot credentials (test credentials, not secrets)
// when it starts, and stops cleanly on SIGINT or SIGTERM: waiting
// long-polls are cut, running requests finish.
package main
