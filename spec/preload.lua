-- Loaded by busted before any spec file (.busted `helper`). luv closes its
-- default loop when its module table is collected; busted unloads the
-- modules a spec file loaded once the file ends, so a second file requiring
-- luv would get a closed loop. Loading luv here keeps one loop for the run.
require "luv"
