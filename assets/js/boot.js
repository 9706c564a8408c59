// napiatke boot: loads data-scripts after the largest paint (base.html says why).
(function(){var me=document.currentScript,srcs=((me&&me.getAttribute("data-scripts"))||"").split(" ").filter(Boolean),done=false;
function load(){if(done)return;done=true;srcs.forEach(function(src){var s=document.createElement("script");s.src=src;s.async=false;document.head.appendChild(s);});}
var types=(window.PerformanceObserver&&PerformanceObserver.supportedEntryTypes)||[],type=types.indexOf("largest-contentful-paint")>=0?"largest-contentful-paint":types.indexOf("paint")>=0?"paint":null;
if(type)new PerformanceObserver(function(list,o){if(list.getEntries().length){o.disconnect();setTimeout(load,0);}}).observe({type:type,buffered:true});
function fallback(){setTimeout(load,1000);}
if(document.readyState==="complete")fallback();else window.addEventListener("load",fallback,{once:true});})();
