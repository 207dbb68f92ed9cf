// autobahn.js from npm (web/node_modules/autobahn-browser, installed by `make install`),
// loaded as a module: its UMD wrapper puts the library on the global object.
import "../node_modules/autobahn-browser/autobahn.min.js";

export default globalThis.autobahn;
