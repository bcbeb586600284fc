module github.com/gwmcp/gw/policies/guest

go 1.26
