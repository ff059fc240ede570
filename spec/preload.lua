-- Loaded by busted before any spec file (.busted `helper`). luv closes its
-- default loop when its module table is collected; busted unloads the
-- modules a spec file loaded once the file ends, so a second file requiring
-- luv would get a closed loop. Loading luv here keeps one loop for the run.
require "luv"

-- spec/helpers/ holds modules the specs require by name (fixtures, tmux, ...)
local here = debug.getinfo(1, "S").source:match("^@(.*)/preload%.lua$") or "spec"
package.path = here .. "/helpers/?.lua;" .. package.path
