"""Static data for the synthetic log generator: eventsim's base page-transition table and the word
lists that names, places, user agents and the song catalogue are combined from.

Kept out of ``generate.py`` so the generator reads as logic; every list is plain ASCII-safe text
that needs no JSON escaping beyond wrapping it in quotes.
"""

from __future__ import annotations

#: eventsim's base transition table: {"page|auth|level": "dest=p; dest[auth/level]=p; ..."}. The
#: remainder of each row to 1 is the chance the session ends after that page.
BASE_TRANSITIONS = {
    "About|Guest|free": "About=0.05; Help=0.1; Home=0.7; Register=0.1; Error=0.001",
    "Help|Guest|free": "About=0.0025; Help=0.1; Home=0.7; Register=0.1; Error=0.001",
    "Home|Guest|free": "About=0.25; Help=0.25; Home=0.1; Register=0.3; Error=0.001",
    "Register|Guest|free": "About=0.1; Help=0.1; Home=0.2; Register=0.05; Submit Registration=0.5; Error=0.001",
    "Submit Registration|Guest|free": "Error=0.1; Home[Logged In/free]=0.9",
    "Error|Guest|free": "About=0.01; Help=0.05; Home=0.8; Error=0.1",
    "About|Logged In|free": (
        "About=0.05; Help=0.01; Home=0.2; Settings=0.01; Add Friend=0.05; NextSong=0.6; "
        "Logout=0.01; Error=0.001"
    ),
    "Help|Logged In|free": (
        "About=0.002; Help=0.1; Home=0.2; Settings=0.05; Add Friend=0.05; Upgrade=0.005; "
        "NextSong=0.5; Logout=0.01; Error=0.001"
    ),
    "Home|Logged In|free": (
        "About=0.002; Help=0.002; Home=0.01; Settings=0.02; Add Friend=0.05; Upgrade=0.005; "
        "NextSong=0.85; Logout=0.01; Error=0.001"
    ),
    "Settings|Logged In|free": (
        "About=0.002; Help=0.05; Home=0.1; Settings=0.1; Add Friend=0.02; Upgrade=0.005; "
        "NextSong=0.5; Cancel=0.005; Logout=0.01; Save Settings=0.2; Error=0.001"
    ),
    "Add Friend|Logged In|free": (
        "About=0.01; Help=0.01; Home=0.1; Settings=0.05; Add Friend=0.3; Upgrade=0.01; "
        "NextSong=0.5; Logout=0.01; Error=0.001"
    ),
    "Add to Playlist|Logged In|free": "Help=0.01; Thumbs Up=0.01; Upgrade=0.01; NextSong=0.95",
    "Thumbs Up|Logged In|free": "Add to Playlist=0.05; Upgrade=0.01; NextSong=0.9; Error=0.001",
    "Thumbs Down|Logged In|free": "NextSong=0.9; Cancel=0.001; Logout=0.01; Error=0.001",
    "Roll Advert|Logged In|free": "Roll Advert=0.02; NextSong=0.9; Cancel=0.001; Logout=0.01; Error=0.001",
    "Upgrade|Logged In|free": (
        "About=0.002; Help=0.006; Home=0.1; Add Friend=0.05; Upgrade=0.07; NextSong=0.45; "
        "Logout=0.01; Submit Upgrade=0.3; Error=0.001"
    ),
    "NextSong|Logged In|free": (
        "About=0.002; Help=0.005; Home=0.02; Settings=0.005; Add Friend=0.01; "
        "Add to Playlist=0.025; Thumbs Up=0.05; Thumbs Down=0.01; Roll Advert=0.08; Upgrade=0.01; NextSong=0.75; "
        "Logout=0.02; Error=0.001"
    ),
    "Cancel|Logged In|free": "Cancellation Confirmation[Cancelled/free]=0.999; Error=0.001",
    "Logout|Logged In|free": "Error=0.001; Home[Logged Out/free]=0.999",
    "Save Settings|Logged In|free": "Home=0.8; Settings=0.1; Error=0.001",
    "Submit Upgrade|Logged In|free": "Home[Logged In/paid]=1",
    "Error|Logged In|free": "About=0.001; Help=0.002; Home=0.2; NextSong=0.75; Logout=0.03; Error=0.01",
    "About|Logged Out|free": "About=0.05; Help=0.025; Home=0.3; Login=0.4; Error=0.001",
    "Help|Logged Out|free": "About=0.0025; Help=0.1; Home=0.3; Login=0.5; Error=0.001",
    "Home|Logged Out|free": "About=0.1; Help=0.05; Home=0.1; Login=0.5; Error=0.001",
    "Login|Logged Out|free": "Home[Logged In/free]=0.999; Error=0.001",
    "Error|Logged Out|free": "About=0.01; Help=0.05; Home=0.5; Login=0.1; Error=0.01",
    "About|Logged In|paid": (
        "About=0.05; Help=0.01; Home=0.2; Settings=0.01; Add Friend=0.05; NextSong=0.4; "
        "Logout=0.01; Error=0.001"
    ),
    "Downgrade|Logged In|paid": (
        "About=0.002; Downgrade=0.07; Help=0.006; Home=0.1; NextSong=0.65; Cancel=0.01; "
        "Logout=0.1; Submit Downgrade=0.03; Error=0.001"
    ),
    "Help|Logged In|paid": (
        "About=0.002; Downgrade=0.005; Help=0.03; Home=0.1; Settings=0.02; Add Friend=0.04; "
        "NextSong=0.75; Logout=0.01; Error=0.001"
    ),
    "Home|Logged In|paid": (
        "About=0.002; Downgrade=0.005; Help=0.002; Home=0.01; Settings=0.02; Add Friend=0.05; "
        "NextSong=0.85; Logout=0.01; Error=0.001"
    ),
    "Settings|Logged In|paid": (
        "About=0.002; Downgrade=0.01; Help=0.05; Home=0.05; Settings=0.05; Add Friend=0.02; "
        "NextSong=0.6; Cancel=0.005; Logout=0.01; Save Settings=0.2; Error=0.001"
    ),
    "Add Friend|Logged In|paid": "Add Friend=0.3; NextSong=0.65; Logout=0.01; Error=0.001",
    "Add to Playlist|Logged In|paid": "Thumbs Up=0.01; NextSong=0.95",
    "Thumbs Up|Logged In|paid": "Add to Playlist=0.07; NextSong=0.9; Error=0.001",
    "Thumbs Down|Logged In|paid": (
        "Downgrade=0.02; Help=0.03; Settings=0.02; NextSong=0.9; Cancel=0.001; Logout=0.02; "
        "Error=0.001"
    ),
    "Roll Advert|Logged In|paid": (
        "Downgrade=0.05; Roll Advert=0.02; NextSong=0.8; Cancel=0.005; Logout=0.1; "
        "Error=0.001"
    ),
    "NextSong|Logged In|paid": (
        "About=0.002; Downgrade=0.01; Help=0.005; Home=0.02; Settings=0.005; Add Friend=0.01; "
        "Add to Playlist=0.025; Thumbs Up=0.05; Thumbs Down=0.01; Roll Advert=0.001; NextSong=0.85; Logout=0.01; "
        "Error=0.001"
    ),
    "Cancel|Logged In|paid": "Cancellation Confirmation[Cancelled/paid]=0.999; Error=0.001",
    "Logout|Logged In|paid": "Error=0.001; Home[Logged Out/paid]=0.999",
    "Save Settings|Logged In|paid": "Home=0.8; Settings=0.1; Error=0.001",
    "Submit Downgrade|Logged In|paid": "Home[Logged In/free]=0.999; Error=0.001",
    "Error|Logged In|paid": "About=0.001; Help=0.01; Home=0.2; NextSong=0.75; Logout=0.01; Error=0.001",
    "About|Logged Out|paid": "About=0.05; Help=0.05; Home=0.3; Login=0.5; Error=0.001",
    "Help|Logged Out|paid": "About=0.0025; Help=0.1; Home=0.3; Login=0.5; Error=0.001",
    "Home|Logged Out|paid": "About=0.1; Help=0.05; Home=0.15; Login=0.65; Error=0.001",
    "Login|Logged Out|paid": "Home[Logged In/paid]=0.999; Error=0.001",
    "Error|Logged Out|paid": "Help=0.08; Home=0.7; Login=0.2; Error=0.01",
}

#: First page of a new session, by (auth, level): page=weight.
SESSION_START = {
    ("Guest", "free"): "About=20; Help=10; Home=100; Register=30; Error=5",
    ("Logged In", "free"): "About=5; Help=10; Home=1000; NextSong=1500; Error=1",
    ("Logged In", "paid"): "About=5; Help=5; Home=1000; NextSong=1750; Error=1",
    ("Logged Out", "free"): "About=10; Help=10; Home=1000; Login=500; Error=1",
    ("Logged Out", "paid"): "About=10; Help=10; Home=1000; Login=500; Error=1",
}

MALE_NAMES = (
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas", "Charles",
    "Christopher", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven", "Paul", "Andrew", "Joshua",
    "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald", "Edward", "Jason", "Jeffrey", "Ryan", "Jacob",
    "Gary", "Nicholas", "Eric", "Jonathan", "Stephen", "Larry", "Justin", "Scott", "Brandon", "Benjamin", "Samuel",
    "Gregory", "Alexander", "Frank", "Patrick", "Raymond", "Jack", "Dennis", "Jerry", "Tyler", "Aaron", "Jose",
    "Adam", "Nathan", "Henry", "Douglas", "Zachary", "Peter", "Kyle", "Ethan", "Walter", "Noah", "Jeremy",
    "Christian", "Keith", "Roger", "Terry", "Gerald", "Harold", "Sean", "Austin", "Carl", "Arthur", "Lawrence",
    "Dylan", "Jesse", "Jordan", "Bryan", "Billy", "Joe", "Bruce", "Gabriel", "Logan", "Albert", "Willie", "Alan",
    "Juan", "Wayne", "Elijah", "Randy", "Roy", "Vincent", "Ralph", "Eugene", "Russell", "Bobby", "Mason", "Philip",
    "Louis", "Colin", "Spencer", "Micah", "Oliver", "Isaac", "Liam", "Owen", "Caleb", "Luke", "Wyatt", "Hunter",
    "Emmanuel", "Marcus", "Trevor", "Devin", "Dominic", "Jaden", "Alex",
)

FEMALE_NAMES = (
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen", "Lisa",
    "Nancy", "Betty", "Margaret", "Sandra", "Ashley", "Kimberly", "Emily", "Donna", "Michelle", "Carol", "Amanda",
    "Dorothy", "Melissa", "Deborah", "Stephanie", "Rebecca", "Sharon", "Laura", "Cynthia", "Kathleen", "Amy",
    "Angela", "Shirley", "Anna", "Brenda", "Pamela", "Emma", "Nicole", "Helen", "Samantha", "Katherine",
    "Christine", "Debra", "Rachel", "Carolyn", "Janet", "Catherine", "Maria", "Heather", "Diane", "Ruth", "Julie",
    "Olivia", "Joyce", "Virginia", "Victoria", "Kelly", "Lauren", "Christina", "Joan", "Evelyn", "Judith", "Megan",
    "Andrea", "Cheryl", "Hannah", "Jacqueline", "Martha", "Gloria", "Teresa", "Ann", "Sara", "Madison", "Frances",
    "Kathryn", "Janice", "Jean", "Abigail", "Alice", "Julia", "Judy", "Sophia", "Grace", "Denise", "Amber", "Doris",
    "Marilyn", "Danielle", "Beverly", "Isabella", "Theresa", "Diana", "Natalie", "Brittany", "Charlotte", "Marie",
    "Kayla", "Alexis", "Lori", "Ava", "Mia", "Chloe", "Zoe", "Lily", "Aubrey", "Brooke", "Faith", "Alyssa",
    "Sierra", "Riley", "Autumn", "Destiny", "Leah",
)

LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
    "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young",
    "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker",
    "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner", "Diaz",
    "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales", "Murphy", "Cook", "Rogers",
    "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim",
    "Cox", "Ward", "Richardson", "Watson", "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza",
    "Ruiz", "Hughes", "Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster",
    "Jimenez", "Powell", "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson",
    "Barnes", "Gonzales", "Fisher", "Vasquez", "Simmons", "Romero", "Jordan", "Patterson", "Alexander", "Hamilton",
    "Graham", "Reynolds", "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson",
    "Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens", "Harrison",
    "Fernandez", "McDonald", "Woods", "Washington", "Kennedy", "Wells", "Vargas", "Henry", "Chen", "Freeman",
    "Webb", "Tucker", "Guzman", "Burns", "Crawford", "Olson", "Simpson", "Porter", "Hunter", "Gordon", "Mendez",
    "Silva", "Shaw", "Snyder", "Mason", "Dixon", "Munoz", "Hunt", "Hicks", "Holmes", "Palmer", "Wagner", "Black",
    "Robertson", "Boyd", "Rose", "Stone", "Salazar", "Fox", "Warren", "Mills", "Meyer", "Rice", "Schmidt", "Garza",
    "Daniels", "Ferguson", "Nichols", "Stephens", "Soto", "Weaver", "Ryan", "Gardner", "Payne", "Grant", "Dunn",
    "Kelley", "Spencer", "Hawkins", "Arnold", "Pierce", "Vazquez", "Hansen", "Peters", "Santos", "Hart", "Bradley",
    "Knight", "Elliott", "Cunningham", "Duncan", "Armstrong", "Hudson", "Carroll", "Lane", "Riley", "Andrews",
    "Alvarado", "Ray", "Delgado", "Berry", "Perkins", "Hoffman", "Johnston", "Matthews", "Pena", "Richards",
    "Contreras", "Willis", "Carpenter", "Lawrence", "Sandoval",
)

#: US places in the "City, ST" style of the real logs; metropolitan names as eventsim wrote them.
LOCATIONS = (
    "New York-Newark-Jersey City, NY-NJ-PA", "Los Angeles-Long Beach-Anaheim, CA",
    "Chicago-Naperville-Elgin, IL-IN-WI", "Dallas-Fort Worth-Arlington, TX", "Houston-The Woodlands-Sugar Land, TX",
    "Washington-Arlington-Alexandria, DC-VA-MD-WV", "Miami-Fort Lauderdale-West Palm Beach, FL",
    "Philadelphia-Camden-Wilmington, PA-NJ-DE-MD", "Atlanta-Sandy Springs-Roswell, GA",
    "Boston-Cambridge-Newton, MA-NH", "Phoenix-Mesa-Scottsdale, AZ", "San Francisco-Oakland-Hayward, CA",
    "Riverside-San Bernardino-Ontario, CA", "Detroit-Warren-Dearborn, MI", "Seattle-Tacoma-Bellevue, WA",
    "Minneapolis-St. Paul-Bloomington, MN-WI", "San Diego-Carlsbad, CA", "Tampa-St. Petersburg-Clearwater, FL",
    "Denver-Aurora-Lakewood, CO", "St. Louis, MO-IL", "Baltimore-Columbia-Towson, MD",
    "Charlotte-Concord-Gastonia, NC-SC", "Orlando-Kissimmee-Sanford, FL", "San Antonio-New Braunfels, TX",
    "Portland-Vancouver-Hillsboro, OR-WA", "Pittsburgh, PA", "Sacramento--Roseville--Arden-Arcade, CA",
    "Cincinnati, OH-KY-IN", "Las Vegas-Henderson-Paradise, NV", "Kansas City, MO-KS", "Austin-Round Rock, TX",
    "Columbus, OH", "Cleveland-Elyria, OH", "Indianapolis-Carmel-Anderson, IN",
    "San Jose-Sunnyvale-Santa Clara, CA", "Nashville-Davidson--Murfreesboro--Franklin, TN",
    "Virginia Beach-Norfolk-Newport News, VA-NC", "Providence-Warwick, RI-MA", "Milwaukee-Waukesha-West Allis, WI",
    "Jacksonville, FL", "Memphis, TN-MS-AR", "Oklahoma City, OK", "Louisville/Jefferson County, KY-IN",
    "Hartford-West Hartford-East Hartford, CT", "Richmond, VA", "New Orleans-Metairie, LA",
    "Buffalo-Cheektowaga-Niagara Falls, NY", "Raleigh, NC", "Birmingham-Hoover, AL", "Salt Lake City, UT",
    "Rochester, NY", "Grand Rapids-Wyoming, MI", "Tucson, AZ", "Urban Honolulu, HI", "Tulsa, OK", "Fresno, CA",
    "Worcester, MA-CT", "Bridgeport-Stamford-Norwalk, CT", "Omaha-Council Bluffs, NE-IA", "Albuquerque, NM",
    "Greenville-Anderson-Mauldin, SC", "Bakersfield, CA", "Albany-Schenectady-Troy, NY", "Knoxville, TN",
    "El Paso, TX", "Baton Rouge, LA", "McAllen-Edinburg-Mission, TX", "New Haven-Milford, CT",
    "Allentown-Bethlehem-Easton, PA-NJ", "Oxnard-Thousand Oaks-Ventura, CA", "Columbia, SC",
    "North Port-Sarasota-Bradenton, FL", "Dayton, OH", "Charleston-North Charleston, SC",
    "Greensboro-High Point, NC", "Stockton-Lodi, CA", "Cape Coral-Fort Myers, FL", "Boise City, ID",
    "Colorado Springs, CO", "Little Rock-North Little Rock-Conway, AR", "Lakeland-Winter Haven, FL", "Akron, OH",
    "Des Moines-West Des Moines, IA", "Springfield, MA", "Ogden-Clearfield, UT", "Madison, WI", "Winston-Salem, NC",
    "Deltona-Daytona Beach-Ormond Beach, FL", "Syracuse, NY", "Provo-Orem, UT", "Toledo, OH", "Wichita, KS",
    "Durham-Chapel Hill, NC", "Augusta-Richmond County, GA-SC", "Palm Bay-Melbourne-Titusville, FL", "Jackson, MS",
    "Harrisburg-Carlisle, PA", "Spokane-Spokane Valley, WA", "Chattanooga, TN-GA",
    "Scranton--Wilkes-Barre--Hazleton, PA", "Modesto, CA", "Lancaster, PA", "Portland-South Portland, ME",
    "Youngstown-Warren-Boardman, OH-PA", "Fayetteville-Springdale-Rogers, AR-MO", "Lansing-East Lansing, MI",
    "Lexington-Fayette, KY", "Santa Rosa, CA", "Pensacola-Ferry Pass-Brent, FL", "Reno, NV", "Springfield, MO",
    "Huntsville, AL", "Corpus Christi, TX", "Asheville, NC", "Fort Wayne, IN", "Visalia-Porterville, CA",
    "Vallejo-Fairfield, CA", "Santa Maria-Santa Barbara, CA", "Salinas, CA", "Mobile, AL", "Reading, PA",
    "Brownsville-Harlingen, TX", "Salem, OR", "Manchester-Nashua, NH", "Flint, MI", "Canton-Massillon, OH",
    "Shreveport-Bossier City, LA", "Gulfport-Biloxi-Pascagoula, MS", "Beaumont-Port Arthur, TX", "Savannah, GA",
    "Trenton, NJ", "Eugene, OR", "Montgomery, AL", "Anchorage, AK", "Ann Arbor, MI",
    "Naples-Immokalee-Marco Island, FL", "Peoria, IL", "Fort Collins, CO", "Lubbock, TX", "Rockford, IL",
    "Killeen-Temple, TX", "Evansville, IN-KY", "Hickory-Lenoir-Morganton, NC", "Tallahassee, FL",
    "Kalamazoo-Portage, MI", "Green Bay, WI", "South Bend-Mishawaka, IN-MI", "Roanoke, VA", "Columbus, GA-AL",
    "Kennewick-Richland, WA", "Erie, PA", "Utica-Rome, NY", "Boulder, CO", "Lincoln, NE", "Duluth, MN-WI",
    "San Luis Obispo-Paso Robles-Arroyo Grande, CA", "Olympia-Tumwater, WA", "Lafayette, LA", "Waco, TX",
    "Norwich-New London, CT", "Atlantic City-Hammonton, NJ", "Cedar Rapids, IA", "Fayetteville, NC",
    "Clarksville, TN-KY", "Santa Cruz-Watsonville, CA", "Tuscaloosa, AL", "Gainesville, FL", "Bellingham, WA",
    "Amarillo, TX", "Binghamton, NY", "Yakima, WA", "Laredo, TX", "Sioux Falls, SD", "Topeka, KS",
    "Champaign-Urbana, IL", "Lynchburg, VA", "Charleston, WV", "Bremerton-Silverdale, WA",
    "Athens-Clarke County, GA", "Medford, OR", "Fargo, ND-MN", "Billings, MT", "Bloomington, IL", "Redding, CA",
    "Jackson, TN", "Yuma, AZ", "Johnson City, TN", "Springfield, IL", "Muskegon, MI", "Panama City, FL",
    "St. Cloud, MN", "Ocala, FL", "Albany, GA", "Oshkosh-Neenah, WI", "Racine, WI", "Greeley, CO",
    "Elkhart-Goshen, IN", "Lake Charles, LA", "Hagerstown-Martinsburg, MD-WV", "Janesville-Beloit, WI",
    "Bloomington, IN", "Flagstaff, AZ", "Prescott, AZ", "Houma-Thibodaux, LA", "Sebastian-Vero Beach, FL",
    "Monroe, LA", "Chico, CA", "Dover, DE", "Wausau, WI", "Danville, VA", "Morgantown, WV", "Coeur d'Alene, ID",
    "Texarkana, TX-AR", "Jonesboro, AR", "Farmington, NM", "Missoula, MT", "Glens Falls, NY", "Alexandria, LA",
    "Cheyenne, WY", "Idaho Falls, ID", "Casper, WY", "Pocatello, ID", "Dubuque, IA", "Bangor, ME", "Mansfield, OH",
    "Sherman-Denison, TX", "Logan, UT-ID", "Winchester, VA-WV", "Kingsport-Bristol-Bristol, TN-VA", "Sumter, SC",
    "Decatur, AL", "Cleveland, TN", "Valdosta, GA", "Napa, CA", "El Centro, CA", "Hanford-Corcoran, CA",
    "Merced, CA", "Madera, CA", "Yuba City, CA", "Vineland-Bridgeton, NJ", "Ocean City, NJ", "Wilmington, NC",
    "Greenville, NC", "Jacksonville, NC", "Goldsboro, NC", "Rocky Mount, NC",
    "Myrtle Beach-Conway-North Myrtle Beach, SC-NC", "Spartanburg, SC", "Florence, SC",
    "Hilton Head Island-Bluffton-Beaufort, SC", "Brunswick, GA", "Macon, GA", "Warner Robins, GA", "Dalton, GA",
    "Gadsden, AL", "Dothan, AL", "Auburn-Opelika, AL", "Florence-Muscle Shoals, AL", "Hattiesburg, MS",
    "Owensboro, KY", "Bowling Green, KY", "Elizabethtown-Fort Knox, KY", "Terre Haute, IN",
    "Lafayette-West Lafayette, IN", "Muncie, IN", "Kokomo, IN", "Columbus, IN", "Lima, OH", "Springfield, OH",
    "Saginaw, MI", "Bay City, MI", "Midland, MI", "Battle Creek, MI", "Jackson, MI", "Niles-Benton Harbor, MI",
    "Appleton, WI", "Eau Claire, WI", "La Crosse-Onalaska, WI-MN", "Sheboygan, WI", "Fond du Lac, WI",
    "Rochester, MN", "Mankato-North Mankato, MN", "Iowa City, IA", "Waterloo-Cedar Falls, IA", "Ames, IA",
    "Sioux City, IA-NE-SD", "Davenport-Moline-Rock Island, IA-IL", "Columbia, MO", "Jefferson City, MO",
    "Joplin, MO", "St. Joseph, MO-KS", "Cape Girardeau, MO-IL", "Lawrence, KS", "Manhattan, KS", "Grand Island, NE",
    "Rapid City, SD", "Bismarck, ND", "Grand Forks, ND-MN", "Great Falls, MT", "Santa Fe, NM", "Las Cruces, NM",
    "Odessa, TX", "Midland, TX", "Abilene, TX", "San Angelo, TX", "Tyler, TX", "Longview, TX",
    "College Station-Bryan, TX", "Victoria, TX", "Wichita Falls, TX", "Lawton, OK", "Enid, OK", "Fort Smith, AR-OK",
    "Hot Springs, AR", "Pine Bluff, AR", "St. George, UT", "Grand Junction, CO", "Pueblo, CO", "Carson City, NV",
    "Lake Havasu City-Kingman, AZ", "Sierra Vista-Douglas, AZ", "Bend-Redmond, OR", "Corvallis, OR", "Albany, OR",
    "Grants Pass, OR", "Wenatchee, WA", "Mount Vernon-Anacortes, WA", "Longview, WA", "Walla Walla, WA",
    "Lewiston, ID-WA", "Fairbanks, AK", "Kahului-Wailuku-Lahaina, HI", "Ithaca, NY", "Elmira, NY", "Kingston, NY",
    "Watertown-Fort Drum, NY", "Burlington-South Burlington, VT", "Barnstable Town, MA", "Pittsfield, MA",
    "Lewiston-Auburn, ME", "Dover-Durham, NH-ME", "State College, PA", "Williamsport, PA", "Altoona, PA",
    "Johnstown, PA", "Lebanon, PA", "Gettysburg, PA", "Chambersburg-Waynesboro, PA", "York-Hanover, PA",
    "East Stroudsburg, PA", "Salisbury, MD-DE", "California-Lexington Park, MD", "Cumberland, MD-WV",
    "Harrisonburg, VA", "Staunton-Waynesboro, VA", "Charlottesville, VA", "Blacksburg-Christiansburg-Radford, VA",
    "Parkersburg-Vienna, WV", "Wheeling, WV-OH", "Weirton-Steubenville, WV-OH", "Huntington-Ashland, WV-KY-OH",
    "Beckley, WV",
)

#: Operating-system and browser fragments the user agents are combined from.
UA_PLATFORMS = (
    "Windows NT 6.1; WOW64", "Windows NT 6.1; Win64; x64", "Windows NT 6.3; WOW64", "Windows NT 10.0; WOW64",
    "Windows NT 6.1", "Windows NT 6.2; WOW64", "Macintosh; Intel Mac OS X 10_9_4",
    "Macintosh; Intel Mac OS X 10_10_0", "Macintosh; Intel Mac OS X 10_9_5", "Macintosh; Intel Mac OS X 10_8_5",
    "X11; Linux x86_64", "X11; Ubuntu; Linux x86_64", "Windows NT 5.1",
)
UA_CHROME = ("35.0.1916.153", "36.0.1985.125", "36.0.1985.143", "37.0.2062.94", "37.0.2062.103",
             "37.0.2062.120", "38.0.2125.101", "38.0.2125.104")
UA_FIREFOX = ("24.0", "30.0", "31.0", "32.0")
UA_SAFARI = (("7.0.6", "537.78.2"), ("7.0.5", "537.77.4"), ("8.0", "600.1.17"), ("6.1.6", "537.78.2"))
UA_MOBILE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 7_1_2 like Mac OS X) AppleWebKit/537.51.2 (KHTML, like Gecko) "
    "Version/7.0 Mobile/11D257 Safari/9537.53",
    "Mozilla/5.0 (iPad; CPU OS 7_1_2 like Mac OS X) AppleWebKit/537.51.2 (KHTML, like Gecko) "
    "Version/7.0 Mobile/11D257 Safari/9537.53",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 8_0 like Mac OS X) AppleWebKit/600.1.4 (KHTML, like Gecko) "
    "Version/8.0 Mobile/12A365 Safari/600.1.4",
    "Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.1; WOW64; Trident/6.0)",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
    "Mozilla/5.0 (Windows NT 6.3; WOW64; Trident/7.0; Touch; rv:11.0) like Gecko",
)

#: Words that artist names and song titles are combined from.
ADJECTIVES = (
    "Black", "White", "Red", "Blue", "Golden", "Silver", "Broken", "Burning", "Cold", "Dark", "Electric", "Empty",
    "Endless", "Falling", "Flying", "Frozen", "Gentle", "Green", "Hidden", "Holy", "Hungry", "Last", "Little",
    "Lonely", "Lost", "Lucky", "Midnight", "Modern", "Naked", "New", "Old", "Open", "Pretty", "Quiet", "Rainy",
    "Restless", "Rolling", "Secret", "Shining", "Silent", "Simple", "Slow", "Strange", "Sweet", "Wild", "Young",
    "Velvet", "Wicked", "Crazy", "Happy", "Sad", "Sunny", "Stone", "Summer", "Winter", "Autumn", "Spring", "Wooden",
    "Crystal", "Neon", "Paper", "Plastic", "Savage", "Bitter", "Sacred", "Tender", "Twisted", "Brave", "Distant",
    "Famous", "Final", "Heavy", "Honest", "Invisible", "Magic", "Perfect", "Royal",
)

NOUNS = (
    "Heart", "Love", "Night", "Day", "Fire", "Rain", "River", "Road", "Sky", "Star", "Sun", "Moon", "Dream",
    "Light", "Shadow", "City", "Girl", "Boy", "World", "Time", "Life", "Soul", "Song", "Dance", "Kiss", "Rose",
    "Ocean", "Wind", "Storm", "Train", "Window", "Door", "House", "Garden", "Mountain", "Angel", "Devil", "Ghost",
    "Mirror", "Diamond", "Tiger", "Wolf", "Bird", "Horse", "Queen", "King", "Heaven", "Thunder", "Summer",
    "Highway", "Letter", "Story", "Memory", "Echo", "Wave", "Island", "Desert", "Forest", "Flame", "Candle",
    "Bullet", "Money", "Paradise", "Radio", "Machine", "Engine", "Satellite", "Planet", "Galaxy", "Comet", "Crown",
    "Sword", "Harbor", "Valley", "Bridge", "Street", "Avenue", "Kingdom", "Circus", "Carnival", "Parade", "Lullaby",
    "Symphony", "Melody", "Rhythm", "Blues", "Anthem", "Hymn", "Lament", "Serenade", "Waltz", "Tango", "Ballad",
)

VERBS = (
    "Dancing", "Running", "Falling", "Waiting", "Dreaming", "Burning", "Flying", "Crying", "Singing", "Walking",
    "Breaking", "Holding", "Chasing", "Calling", "Fading", "Shining", "Rising", "Sleeping", "Drifting", "Hiding",
    "Leaving", "Losing", "Finding", "Touching", "Saving",
)

PREPOSITIONS = ("in the", "on the", "under the", "over the", "through the", "into the", "beyond the",
                "with the", "from the", "after the", "for the", "across the")

SONG_SUFFIXES = ("", "", "", "", "", "", " (Album Version)", " (Remix)", " (Live)", " (Radio Edit)",
                 " (Acoustic)", " [Explicit]")

ARTIST_PREFIXES = ("The", "DJ", "MC", "Los", "Lil", "Big", "Dr.", "Sir")
ARTIST_SUFFIXES = ("Band", "Orchestra", "Trio", "Quartet", "Collective", "Project", "Experience", "Brothers",
                   "Sisters", "Crew", "Club", "Society", "Allstars", "Ensemble", "Kids", "Boys", "Girls")
