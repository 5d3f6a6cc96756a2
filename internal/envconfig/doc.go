// Package envconfig parses the bridge's configuration from environment
// variables, once, with github.com/caarlos0/env, and describes it.
//
// It adds two things to the env library: errors that name the variable, say
// what is wrong and show a valid value (the contract of docs/configuration.md), and
// a listing of every variable with its default and whether it is set, where
// secrets are only ever reported as set or unset (`bridge env`).
package envconfig
