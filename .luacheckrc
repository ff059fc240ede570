-- luacheck --std lua54 over the project (make test runs `luacheck .`)
std = "lua54"
include_files = {
  "lua/**/*.lua", "spec/**/*.lua", "examples/**/*.lua", "bench/**/*.lua", "bin/async-inspect",
  "scripts/**/*.lua",
}
exclude_files = { "build/**", "build-asan/**" }
files["spec"] = { std = "+busted" }
max_line_length = 120
