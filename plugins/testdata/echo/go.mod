module gwtest/echo

go 1.26
